"""The code engine: fence extraction, language detection, the Python check, the stream."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from inference.base import (
    Completion,
    Delta,
    GenerationRequest,
    Structured,
    Usage,
    collect,
    count_tokens,
)
from inference.code import (
    CodeBlock,
    CodeSpec,
    Language,
    analyse,
    build_prompt,
    choose_block,
    code,
    detect_language,
    extract_blocks,
    language_check,
    python_syntax_ok,
)

SAMPLES = {
    Language.PYTHON: """import json


def load(path: str) -> dict:
    with open(path) as handle:
        return json.load(handle)
""",
    Language.JAVASCRIPT: """const fs = require("fs");

function readConfig(path) {
  const text = fs.readFileSync(path, "utf8");
  return JSON.parse(text);
}

module.exports = { readConfig };
""",
    Language.TYPESCRIPT: """export interface User {
  id: number;
  name: string;
}

export function greet(user: User): string {
  return `Hello, ${user.name}`;
}
""",
    Language.JAVA: """public class Hello {
    public static void main(String[] args) {
        System.out.println("Hello");
    }
}
""",
    Language.GO: """package main

import "fmt"

func main() {
\tname := "world"
\tfmt.Println("hello", name)
}
""",
    Language.RUST: """fn main() {
    let mut total = 0;
    for n in 1..=10 {
        total += n;
    }
    println!("{}", total);
}
""",
    Language.C: """#include <stdio.h>

int main(void) {
    printf("hello\\n");
    return 0;
}
""",
    Language.CPP: """#include <iostream>
#include <vector>

int main() {
    std::vector<int> values{1, 2, 3};
    for (int v : values) std::cout << v << "\\n";
}
""",
    Language.CSHARP: """using System;

public class Program
{
    public static void Main(string[] args)
    {
        Console.WriteLine("Hello");
    }
}
""",
    Language.SQL: """SELECT u.id, COUNT(o.id) AS orders
FROM users u
LEFT JOIN orders o ON o.user_id = u.id
GROUP BY u.id
ORDER BY orders DESC;
""",
    Language.BASH: """#!/usr/bin/env bash
set -euo pipefail
for file in "$@"; do
  echo "$file"
done
""",
    Language.KOTLIN: """data class Point(val x: Int, val y: Int)

fun main() {
    val p = Point(1, 2)
    println(p)
}
""",
    Language.SWIFT: """import Foundation

func greet(name: String) -> String {
    return "Hello, \\(name)"
}
""",
    Language.PHP: """<?php
function greet(string $name): string {
    return "Hello, " . $name;
}
echo greet("world");
""",
    Language.RUBY: """class Greeter
  attr_reader :name

  def initialize(name)
    @name = name
  end

  def greet
    puts "Hello, #{name}"
  end
end
""",
}


def test_every_language_has_a_sample() -> None:
    assert set(SAMPLES) == set(Language)


@pytest.mark.parametrize("language", list(Language))
def test_each_language_is_detected_from_a_small_sample(language: Language) -> None:
    assert detect_language(SAMPLES[language]) is language


@pytest.mark.parametrize(
    ("sample", "language"),
    [
        (
            'const fs = require("fs");\nconst count: number = 3;\nconsole.log(count);\n',
            "typescript",
        ),
        ('#include <stdio.h>\nint main() {\n  int *p = nullptr;\n  printf("%p", p);\n}\n', "cpp"),
    ],
)
def test_one_superset_marker_outweighs_many_subset_markers(sample: str, language: str) -> None:
    detected = detect_language(sample)
    assert detected is not None and detected.value == language


@pytest.mark.parametrize(
    "text",
    ["", "Here is some prose without code.", "x = 1", "return value"],
)
def test_too_little_evidence_is_unknown(text: str) -> None:
    assert detect_language(text) is None


def test_lowercase_sql_and_python_from_imports_are_told_apart() -> None:
    assert detect_language("select id, name from users where id = 1;") is Language.SQL
    assert detect_language("from os import path\nimport sys\n") is None  # too little either way
    python = "from os import path\n\ndef main() -> None:\n    print(path.sep)\n"
    assert detect_language(python) is Language.PYTHON


@pytest.mark.parametrize(
    ("requested", "detected", "check"),
    [
        (Language.PYTHON, Language.PYTHON, "match"),
        (Language.PYTHON, Language.RUBY, "mismatch"),
        (Language.TYPESCRIPT, Language.JAVASCRIPT, "match"),  # plain JS is valid TS
        (Language.JAVASCRIPT, Language.TYPESCRIPT, "mismatch"),
        (Language.CPP, Language.C, "match"),
        (Language.C, Language.CPP, "mismatch"),
        (Language.GO, None, "unknown"),
    ],
)
def test_language_check(requested: Language, detected: Language | None, check: str) -> None:
    assert language_check(requested, detected) == check


ANSWER = """Here is a helper.

```bash
pip install requests
```

```py
import requests


def fetch(url: str) -> str:
    return requests.get(url, timeout=5).text
```

```javascript
console.log("not this one");
```
That is all.
"""


def test_blocks_are_extracted_with_their_info_strings() -> None:
    blocks = extract_blocks(ANSWER)
    assert [b.info for b in blocks] == ["bash", "py", "javascript"]
    assert blocks[0].code == "pip install requests"
    assert blocks[1].code.startswith("import requests\n\n\ndef fetch")
    assert blocks[1].code.endswith("timeout=5).text")
    assert all(b.closed for b in blocks)


def test_the_block_in_the_requested_language_is_chosen_else_the_first() -> None:
    blocks = extract_blocks(ANSWER)
    assert choose_block(blocks, Language.PYTHON) is blocks[1]  # "py" is an alias
    assert choose_block(blocks, Language.JAVASCRIPT) is blocks[2]
    assert choose_block(blocks, Language.RUST) is blocks[0]
    assert choose_block([], Language.RUST) is None
    assert choose_block([CodeBlock("{.python title=x}", "x")], Language.PYTHON) is not None


def test_an_unterminated_fence_runs_to_the_end() -> None:
    blocks = extract_blocks("Sure:\n```go\npackage main\n\nfunc main() {")
    assert blocks == [CodeBlock("go", "package main\n\nfunc main() {", closed=False)]


def test_longer_and_tilde_fences_keep_inner_fences_as_code() -> None:
    text = "````markdown\n```python\nx = 1\n```\n````\n~~~ruby\nputs 1\n~~~\n"
    blocks = extract_blocks(text)
    assert blocks[0] == CodeBlock("markdown", "```python\nx = 1\n```")
    assert blocks[1] == CodeBlock("ruby", "puts 1")


def test_an_indented_fence_strips_its_indentation_from_the_code() -> None:
    assert extract_blocks("  ```c\n  int x;\n    y;\n  ```")[0].code == "int x;\n  y;"


def test_without_a_fence_the_whole_answer_is_the_code() -> None:
    result = analyse(Language.PYTHON, "\ndef f() -> int:\n    return 1\n\n")
    assert result["code"] == "def f() -> int:\n    return 1"
    assert result["blocks"] == 0
    assert result["language_check"] == "match"
    assert result["syntax_ok"] is True


def test_python_syntax_is_checked_without_running_anything() -> None:
    assert python_syntax_ok("def f(:\n    pass") is False
    assert python_syntax_ok("import os\nos.remove('/definitely/not/here')\n") is True
    # a SyntaxWarning must not escape (tests turn warnings into errors)
    assert python_syntax_ok('pattern = "\\d+"\n') is True
    assert python_syntax_ok("x = 1\x00") is False


def test_analyse_reports_a_mismatch_and_no_syntax_check_outside_python() -> None:
    answer = f"```rust\n{SAMPLES[Language.RUBY]}```"
    result = analyse(Language.RUST, answer)
    assert result["language_check"] == "mismatch"
    assert result["detected_language"] == "ruby"
    assert result["syntax_ok"] is None
    broken = analyse(Language.PYTHON, "```python\ndef broken(:\n```")
    assert broken["syntax_ok"] is False


class ScriptedEngine:
    """Streams a fixed answer in small chunks and remembers the requests it got."""

    name = "scripted"

    def __init__(self, answer: str, chunk: int = 7) -> None:
        self.answer = answer
        self.chunk = chunk
        self.requests: list[GenerationRequest] = []

    async def stream(self, request: GenerationRequest) -> AsyncIterator[Delta]:
        self.requests.append(request)
        for start in range(0, len(self.answer), self.chunk):
            yield Delta(self.answer[start : start + self.chunk])

    async def complete(self, request: GenerationRequest) -> Completion:
        return await collect(self, request)

    async def aclose(self) -> None:
        pass


async def test_code_streams_the_answer_then_the_checked_code() -> None:
    engine = ScriptedEngine(ANSWER)
    spec = CodeSpec(
        language=Language.PYTHON,
        task="Write a function that fetches a URL.",
        context="def old():\n    '''```'''\n",
        seed=9,
        max_tokens=300,
    )
    pieces = [p async for p in code(engine, spec, model="coder", request_id="r1")]

    prompt = build_prompt(spec)
    assert pieces[0] == Usage(prompt_tokens=count_tokens(prompt))
    deltas = [p for p in pieces if isinstance(p, Delta)]
    assert "".join(d.text for d in deltas) == ANSWER
    assert isinstance(pieces[-1], Structured)
    assert pieces[1:-1] == deltas

    (request,) = engine.requests
    assert (request.model, request.request_id, request.seed, request.max_tokens) == (
        "coder",
        "r1",
        9,
        300,
    )
    assert request.prompt == prompt
    assert "PEP 8" in prompt and "one ```python fenced block" in prompt
    assert prompt.endswith("Task:\nWrite a function that fetches a URL.")
    assert "````python\ndef old():\n    '''```'''\n\n````" in prompt  # context fence stays whole

    data = pieces[-1].data
    assert json.loads(json.dumps(data)) == data
    assert data == {
        "language": "python",
        "code": extract_blocks(ANSWER)[1].code,
        "blocks": 3,
        "language_check": "match",
        "detected_language": "python",
        "syntax_ok": True,
    }
