"""Fitting text to time and screen: voice units, voice-over trimming and caption lines.

A voice unit is a word, or one CJK character; a voice-over is trimmed to a budget of units at
a word (or character) boundary. Caption lines are measured in display columns, where a wide
(CJK, full-width) character takes two.
"""

from __future__ import annotations

import bisect
import re
import unicodedata

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
# A voice unit: one CJK character, or one run of other letters and digits (a word).
_UNIT = re.compile(rf"[{_CJK}]|[^\W_{_CJK}]+(?:['’][^\W_{_CJK}]+)*")
_ENDING = "。！？…"
_CLOSING = f".!?,;:)]\"'{_ENDING}，；：、’”）」』》"
_GLUED = re.compile(rf"[{re.escape(_CLOSING)}]*")
# A sentence end with its closing quotes, before a space, the end or a CJK character.
SENTENCE_END = re.compile(rf"[.!?{_ENDING}]+[\"'’”）」』]*(?=\s|$|[{_CJK}])")
_DANGLING = " ,;:，；：、-—"
_PUNCT = "\u3000-\u303f\uff00-\uffef"
_ATOM = re.compile(rf"\s+|[{_CJK}]|[{_PUNCT}]|[^\s{_CJK}{_PUNCT}]+")
_OPENING = set("(['\"‘“（「『《")


def count_units(text: str) -> int:
    """Voice units in `text`: words, with each CJK character counted as one."""
    return len(_UNIT.findall(text))


def trim_voice_over(text: str, budget: int) -> str:
    """`text` cut to at most `budget` voice units at a word (or CJK character) boundary.

    A sentence end in the second half of the budget is preferred; a cut inside a sentence
    drops dangling punctuation and ends with an ellipsis.
    """
    text = " ".join(text.split())
    units = list(_UNIT.finditer(text))
    if len(units) <= budget:
        return text
    if budget <= 0:
        return ""
    cut = units[budget - 1].end()
    glued = _GLUED.match(text, cut)
    cut = glued.end() if glued else cut
    sentence_ends = list(SENTENCE_END.finditer(text, 0, cut))
    if sentence_ends:
        last = sentence_ends[-1]
        kept = bisect.bisect_right([unit.end() for unit in units], last.start())
        if kept * 2 >= budget:
            return text[: last.end()]
    return text[:cut].rstrip(_DANGLING) + "…"


def text_width(text: str) -> int:
    """Display columns: two for a wide (CJK, full-width) character, one for the rest."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def caption_lines(text: str, width: int) -> list[str]:
    """`text` broken into lines of at most `width` columns, between words or CJK characters;
    closing punctuation stays on the line it closes, opening punctuation moves down."""
    atoms: list[str] = []
    for atom in _ATOM.findall(" ".join(text.split())):
        glue = atoms and not atom.isspace() and not atoms[-1].isspace()
        if glue and (all(ch in _CLOSING for ch in atom) or all(ch in _OPENING for ch in atoms[-1])):
            atoms[-1] += atom
        else:
            atoms.append(atom)
    lines: list[str] = []
    line, space = "", False
    for atom in atoms:
        if atom.isspace():
            space = bool(line)
            continue
        joined = f"{line} {atom}" if space else line + atom
        if text_width(joined) <= width:
            line = joined
        else:
            if line:
                lines.append(line)
            line = ""
            for ch in atom:  # a word wider than a whole line is broken hard
                if line and text_width(line + ch) > width:
                    lines.append(line)
                    line = ""
                line += ch
        space = False
    if line:
        lines.append(line)
    return lines
