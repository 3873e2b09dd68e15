"""The code tool's engine: a per-language prompt, the answer streamed, then its code checked.

After the stream the fenced block in the requested language is extracted (or the first one,
or the whole answer when there is no fence), its language guessed from syntax markers and,
for Python, its syntax checked with `ast.parse` (parsed, never run).
"""

from __future__ import annotations

import ast
import re
import warnings
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

from inference.base import Engine, GenerationRequest, Piece, Structured, Usage, count_tokens

MIN_TASK_CHARS = 1
MAX_TASK_CHARS = 4_000
MAX_CONTEXT_CHARS = 20_000
DEFAULT_MAX_TOKENS = 1_024
# A guess needs at least this much evidence, and must beat the runner-up.
_MIN_SCORE = 3
_SAMPLE_CHARS = 20_000
_SAMPLE_LINE = 400


class Language(StrEnum):
    """The languages the code tool writes."""

    PYTHON = "python"
    JAVASCRIPT = "javascript"
    TYPESCRIPT = "typescript"
    JAVA = "java"
    GO = "go"
    RUST = "rust"
    C = "c"
    CPP = "cpp"
    CSHARP = "csharp"
    SQL = "sql"
    BASH = "bash"
    KOTLIN = "kotlin"
    SWIFT = "swift"
    PHP = "php"
    RUBY = "ruby"


_STYLE = {
    Language.PYTHON: "Python 3.11+: PEP 8, type hints, short docstrings, standard library first.",
    Language.JAVASCRIPT: "Modern JavaScript (ES2022 modules): const/let, async/await, no var.",
    Language.TYPESCRIPT: "TypeScript in strict mode: explicit types at boundaries, no `any`.",
    Language.JAVA: "Java 17+: one public class per file, records where they fit, clear names.",
    Language.GO: "Go: gofmt style, errors returned and wrapped with %w, small interfaces.",
    Language.RUST: "Rust 2021: no unwrap outside tests, Result with `?`, clippy-clean.",
    Language.C: "C11: check every allocation and return value, free what you allocate.",
    Language.CPP: "C++17: RAII, std containers and smart pointers, no raw new/delete.",
    Language.CSHARP: "C# 12 / .NET 8: nullable enabled, async Task APIs, PascalCase members.",
    Language.SQL: "Standard SQL (PostgreSQL dialect): uppercase keywords, explicit JOINs.",
    Language.BASH: "Bash: `#!/usr/bin/env bash`, `set -euo pipefail`, quote every expansion.",
    Language.KOTLIN: "Kotlin: val over var, data classes, null safety without `!!`.",
    Language.SWIFT: "Swift 5.9: let over var, guard for early exits, value types first.",
    Language.PHP: "PHP 8.2: `declare(strict_types=1);`, typed properties, PSR-12 style.",
    Language.RUBY: "Ruby 3: two-space indent, snake_case, blocks and Enumerable over loops.",
}
# Info strings that name each language in a fence (```py, ```c++ …).
_ALIASES = {
    Language.PYTHON: {"python", "py", "python3", "py3"},
    Language.JAVASCRIPT: {"javascript", "js", "node", "mjs", "cjs", "jsx"},
    Language.TYPESCRIPT: {"typescript", "ts", "tsx"},
    Language.JAVA: {"java"},
    Language.GO: {"go", "golang"},
    Language.RUST: {"rust", "rs"},
    Language.C: {"c", "h"},
    Language.CPP: {"cpp", "c++", "cxx", "cc", "hpp"},
    Language.CSHARP: {"csharp", "c#", "cs"},
    Language.SQL: {"sql", "postgresql", "postgres", "psql", "mysql", "sqlite", "plpgsql"},
    Language.BASH: {"bash", "sh", "shell", "zsh", "console"},
    Language.KOTLIN: {"kotlin", "kt", "kts"},
    Language.SWIFT: {"swift"},
    Language.PHP: {"php"},
    Language.RUBY: {"ruby", "rb"},
}
# Code in a subset language is also valid in its superset: plain JavaScript is TypeScript.
_ACCEPTS = {Language.TYPESCRIPT: {Language.JAVASCRIPT}, Language.CPP: {Language.C}}
# A superset scores its own markers on top of its subset's, when it has any of its own.
_EXTENDS = {Language.TYPESCRIPT: Language.JAVASCRIPT, Language.CPP: Language.C}

_M = re.MULTILINE
_I = re.MULTILINE | re.IGNORECASE
# (pattern, weight) per language; shared markers carry little weight, telling ones more.
_MARKERS: dict[Language, tuple[tuple[re.Pattern[str], int], ...]] = {
    Language.PYTHON: (
        (re.compile(r"^\s*def \w+\(.*\)\s*(->\s*[^:]+)?:\s*$", _M), 4),
        (re.compile(r"^\s*class \w+(\(.*\))?:\s*$", _M), 4),
        (re.compile(r"^\s*(from [\w.]+ import \w|import [\w.]+\s*$)", _M), 2),
        (re.compile(r"\belif\b|\bself\.|__name__|\bNone\b"), 2),
        (re.compile(r"^\s*(if|for|while|with|try|else)\b.*:\s*$", _M), 1),
    ),
    Language.JAVASCRIPT: (
        (re.compile(r"\bconsole\.log\(|\brequire\(['\"]|\bmodule\.exports\b"), 4),
        (re.compile(r"\bfunction\s*\w*\s*\([^$)\n]*\)\s*\{"), 2),
        (re.compile(r"\b(const|let) \w+ = "), 1),
        (re.compile(r"=>|===|!=="), 1),
        (re.compile(r"^\s*(import .+ from ['\"]|export (default|const|function)\b)", _M), 2),
    ),
    Language.TYPESCRIPT: (
        (re.compile(r"\w\??\s*:\s*(string|number|boolean|void|unknown|any|never)\b"), 3),
        (re.compile(r"^\s*(export )?(interface \w+|type \w+(<.*>)?\s*=)", _M), 3),
        (re.compile(r"\b(readonly|as const|implements)\b|<\w+>\("), 2),
    ),
    Language.JAVA: (
        (re.compile(r"\bSystem\.out\.print|\bString\[\] args|@Override\b"), 4),
        (re.compile(r"^\s*(package [\w.]+|import [\w.]+(\.\*)?);\s*$", _M), 4),
        (re.compile(r"\bpublic (static |final )*(class|void|interface)\b"), 2),
        (re.compile(r"\bprivate (static )?final\b|\bnew \w+(<.*>)?\("), 1),
    ),
    Language.GO: (
        (re.compile(r"^package \w+\s*$", _M), 4),
        (re.compile(r"^\s*func (\(\w+ \*?\w+\) )?\w+\(", _M), 4),
        (re.compile(r"\bfmt\.\w+\(|\berr != nil\b|^import \($", _M), 4),
        (re.compile(r":=|\bchan\b|\bgo func\b"), 2),
    ),
    Language.RUST: (
        (re.compile(r"\bfn \w+(<.*>)?\("), 4),
        (re.compile(r"\blet mut\b|\b(println|vec|format|panic)!\("), 4),
        (re.compile(r"\bimpl\b|&mut\b|&str\b|\bpub (fn|struct|enum)\b"), 3),
        (re.compile(r"^use [\w:]+(::\{.*\})?;", _M), 3),
    ),
    Language.C: (
        (re.compile(r"^#include <\w+\.h>", _M), 4),
        (re.compile(r"\b(printf|scanf|malloc|free|fprintf)\("), 2),
        (re.compile(r"\bint main\(|\bNULL\b|\bstruct \w+\s*\{|^#define ", _M), 2),
    ),
    Language.CPP: (
        (re.compile(r"^#include <\w+>$", _M), 4),
        (re.compile(r"\bstd::|\bcout\s*<<|\bcin\s*>>"), 4),
        (re.compile(r"\btemplate\s*<|\bnullptr\b|\bnamespace \w+\s*\{"), 3),
    ),
    Language.CSHARP: (
        (re.compile(r"^using System(\.\w+)*;", _M), 4),
        (re.compile(r"\bConsole\.Write(Line)?\(|\{ get; (set; )?\}"), 4),
        (re.compile(r"^namespace [\w.]+;?\s*$|\basync Task\b|\bstring\[\] args", _M), 3),
        (re.compile(r"\bpublic (static |override |async )*\w+(<\w+>)? \w+\("), 1),
    ),
    Language.SQL: (
        (re.compile(r"^\s*SELECT\s+[\w*]", _I), 4),
        (re.compile(r"\b(INSERT INTO|CREATE TABLE|ALTER TABLE|DELETE FROM)\b", _I), 4),
        (re.compile(r"\bUPDATE \w+ SET\b", _I), 4),
        (re.compile(r"\b(FROM|WHERE|JOIN|GROUP BY|ORDER BY)\b"), 1),
    ),
    Language.BASH: (
        (re.compile(r"^#!.*\b(ba|z)?sh\b", _M), 6),
        (re.compile(r"^\s*(fi|done|esac)\s*$|^\s*if \[\[? .+\]\]?; then\s*$", _M), 4),
        (re.compile(r"^\s*(export|local) \w+=|\w+=\$\(|\|\s*(grep|awk|sed|xargs)\b", _M), 3),
        (re.compile(r"^\s*echo\b|\$\{?\w+\}?", _M), 1),
    ),
    Language.KOTLIN: (
        (re.compile(r"\bfun \w+\("), 4),
        (re.compile(r"\bdata class\b|\bcompanion object\b|\bwhen\s*(\(.*\))?\s*\{"), 4),
        (re.compile(r"\bval \w+(:\s*[\w<>?]+)?\s*="), 3),
        (re.compile(r"\?:|\bprintln\("), 1),
    ),
    Language.SWIFT: (
        (re.compile(r"^import (Foundation|UIKit|SwiftUI)\b", _M), 5),
        (re.compile(r"\bfunc \w+\([^)\n]*\w: \w"), 3),
        (re.compile(r"\b(guard|if) let\b|\\\(\w+\)|@(State|Published)\b"), 4),
        (re.compile(r"\bfunc \w+\(.*\)\s*->\s*\w+|\blet \w+: \w+|\bvar \w+: \w+"), 2),
    ),
    Language.PHP: (
        (re.compile(r"<\?php"), 8),
        (re.compile(r"\$this->|\bfunction \w+\(\s*(\??\w+\s+)?\$"), 4),
        (re.compile(r"\$\w+\s*=[^=]|\becho\b"), 1),
    ),
    Language.RUBY: (
        (re.compile(r"^\s*def \w+[?!]?(\(.*\))?\s*$", _M), 3),
        (re.compile(r"^\s*end\s*$", _M), 2),
        (re.compile(r"\bputs\b|\belsif\b|\battr_(reader|accessor|writer)\b|\bdo \|\w+"), 4),
        (re.compile(r"^\s*require ['\"]|#\{\w+\}|\bnil\b", _M), 2),
    ),
}


@dataclass(frozen=True)
class CodeSpec:
    """A validated code request (limits: MAX_TASK_CHARS, MAX_CONTEXT_CHARS)."""

    language: Language
    task: str
    context: str = ""
    seed: int | None = None
    max_tokens: int = DEFAULT_MAX_TOKENS


@dataclass(frozen=True)
class CodeBlock:
    """One fenced block: its info string, its code and whether its fence was closed."""

    info: str
    code: str
    closed: bool = True


_OPEN = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def extract_blocks(text: str) -> list[CodeBlock]:
    """The fenced blocks of a markdown answer; an unclosed fence runs to the end of the text."""
    blocks: list[CodeBlock] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        opening = _OPEN.match(lines[index])
        index += 1
        info = opening["info"].strip() if opening else ""
        if not opening or (opening["fence"][0] == "`" and "`" in info):
            continue
        fence, indent = opening["fence"], len(opening["indent"])
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}[ \t]*$")
        body: list[str] = []
        closed = False
        while index < len(lines):
            line = lines[index]
            index += 1
            if closing.match(line):
                closed = True
                break
            # The fence's own indentation is not part of the code (CommonMark).
            body.append(line[min(indent, len(line) - len(line.lstrip(" "))) :])
        blocks.append(CodeBlock(info, "\n".join(body), closed))
    return blocks


def _info_language(info: str) -> Language | None:
    words = info.strip("{}. ").split()
    name = words[0].lstrip(".").lower() if words else ""
    return next((lang for lang, names in _ALIASES.items() if name in names), None)


def choose_block(blocks: Sequence[CodeBlock], language: Language) -> CodeBlock | None:
    """The first block whose info string names `language`, else the first block."""
    for block in blocks:
        if _info_language(block.info) is language:
            return block
    return blocks[0] if blocks else None


def detect_language(code: str) -> Language | None:
    """A guess from syntax markers; None when nothing stands out clearly."""
    # Markers look at a bounded sample so a pathological answer cannot make them slow.
    sample = "\n".join(line[:_SAMPLE_LINE] for line in code[:_SAMPLE_CHARS].splitlines())
    own = {
        language: sum(weight for pattern, weight in markers if pattern.search(sample))
        for language, markers in _MARKERS.items()
    }
    scores = dict(own)
    for superset, subset in _EXTENDS.items():
        if own[superset]:
            scores[superset] += own[subset]
    ranked = sorted(scores.items(), key=lambda pair: pair[1], reverse=True)
    (best, top), (_, runner_up) = ranked[0], ranked[1]
    return best if top >= _MIN_SCORE and top > runner_up else None


def language_check(requested: Language, detected: Language | None) -> str:
    """`match`, `mismatch` or `unknown` (nothing detected)."""
    if detected is None:
        return "unknown"
    accepted = {requested, *_ACCEPTS.get(requested, ())}
    return "match" if detected in accepted else "mismatch"


def python_syntax_ok(code: str) -> bool | None:
    """Whether `code` parses as Python; None when the parser gives up (too deeply nested)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. SyntaxWarning for "\d" in a plain string
            ast.parse(code)
    except (SyntaxError, ValueError):
        return False
    except (RecursionError, MemoryError):
        return None
    return True


def analyse(language: Language, answer: str) -> dict[str, object]:
    """The structured result of an answer: the chosen code and what the checks found."""
    blocks = extract_blocks(answer)
    chosen = choose_block(blocks, language)
    code = chosen.code if chosen is not None else answer.strip()
    detected = detect_language(code)
    return {
        "language": language.value,
        "code": code,
        "blocks": len(blocks),
        "language_check": language_check(language, detected),
        "detected_language": detected.value if detected else None,
        "syntax_ok": python_syntax_ok(code) if language is Language.PYTHON else None,
    }


def build_prompt(spec: CodeSpec) -> str:
    """The model prompt: style notes, the answer format, any context, the task last."""
    tag = spec.language.value
    lines = [
        f"Write code for the task below. {_STYLE[spec.language]}",
        f"Answer with the complete code in one ```{tag} fenced block, then one or two "
        "sentences of explanation.",
    ]
    if spec.context.strip():
        # A fence longer than any backtick run inside keeps the context in one piece.
        longest = max((len(run) for run in re.findall(r"`+", spec.context)), default=0)
        fence = "`" * max(3, longest + 1)
        lines.append(f"Existing code for context:\n{fence}{tag}\n{spec.context}\n{fence}")
    lines.append(f"Task:\n{spec.task}")
    return "\n".join(lines)


async def code(
    engine: Engine, spec: CodeSpec, *, model: str, request_id: str
) -> AsyncIterator[Piece]:
    """Stream the model's answer, then the extracted code and its checks as a result."""
    prompt = build_prompt(spec)
    request = GenerationRequest(
        request_id=request_id,
        model=model,
        prompt=prompt,
        max_tokens=spec.max_tokens,
        temperature=0.2,
        seed=spec.seed,
    )
    yield Usage(prompt_tokens=count_tokens(prompt))
    parts: list[str] = []
    async for delta in engine.stream(request):
        parts.append(delta.text)
        yield delta
    yield Structured(analyse(spec.language, "".join(parts)))
