"""The languages the translate tool supports, and detecting which one a text is in.

Detection is rules, not a model: the script with the most (weighted) letters decides, and
Latin-script text is told apart by stop words and distinctive letters.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Mapping
from types import MappingProxyType

# The supported languages, code to English name; OPUS-MT names its models by these codes.
# fmt: off
LANGUAGES: Mapping[str, str] = MappingProxyType({
    "en": "English", "zh": "Chinese", "ja": "Japanese", "ko": "Korean", "fr": "French",
    "de": "German", "es": "Spanish", "it": "Italian", "pt": "Portuguese", "ru": "Russian",
    "ar": "Arabic", "vi": "Vietnamese", "th": "Thai", "id": "Indonesian",
})
# fmt: on


def _script(char: str) -> str | None:
    point = ord(char)
    if 0x3040 <= point <= 0x30FF or 0x31F0 <= point <= 0x31FF or 0xFF66 <= point <= 0xFF9D:
        return "kana"
    if 0x3400 <= point <= 0x9FFF or 0xF900 <= point <= 0xFAFF or 0x20000 <= point <= 0x2FA1F:
        return "han"
    if 0xAC00 <= point <= 0xD7AF or 0x1100 <= point <= 0x11FF or 0x3130 <= point <= 0x318F:
        return "hangul"
    if 0x0400 <= point <= 0x052F:
        return "cyrillic"
    if 0x0600 <= point <= 0x06FF or 0x0750 <= point <= 0x077F or 0xFB50 <= point <= 0xFEFF:
        return "arabic"
    if 0x0E00 <= point <= 0x0E7F:
        return "thai"
    if char.isalpha() and (point < 0x0250 or 0x1E00 <= point <= 0x1EFF):
        return "latin"
    return None


# A character of a script written without spaces stands for about a word of Latin letters.
_SCRIPT_WEIGHT = {"kana": 3, "han": 3, "hangul": 2, "thai": 2}
_UNSPACED = frozenset({"han", "kana", "hangul", "thai"})
_SCRIPT_LANGUAGE = {"hangul": "ko", "cyrillic": "ru", "arabic": "ar", "thai": "th"}

_STOP_WORDS = {
    "en": "the and of to is are was were this that with for you have not it be on from",
    "fr": "le la les des est et une un du pas pour dans avec ce sont nous vous je au sur mais qui",
    "de": "der die das und ist nicht ein eine ich zu mit sie den von auf sich auch dem wir sind",
    "es": "el los las del y por con una para se está como pero muy yo es en hay",
    "it": "il lo gli della che è di per non una sono con del nel anche ma questo io",
    "pt": "o os do da dos das não um uma para com em no na eu você mas são é",
    "vi": "và của là có không những một các được cho tôi này với người trong",
    "id": "dan yang di ini itu dengan untuk tidak ada saya dari akan ke kami adalah juga",
}
# Letters that (among our Latin-script languages) belong to one language.
_LETTERS = {"de": "äöüß", "es": "ñ¿¡", "pt": "ãõ", "fr": "œëîûùÿ", "vi": "đơưă"}
_WORDS = re.compile(r"[^\W\d_]+")


def _latin_language(text: str) -> str:
    folded = text.lower()  # not casefold: it turns "ß" into "ss"
    words = _WORDS.findall(folded)
    scores: Counter[str] = Counter()
    for code, stop_words in _STOP_WORDS.items():
        stop = set(stop_words.split())
        scores[code] = sum(word in stop for word in words)
    for code, letters in _LETTERS.items():
        scores[code] += sum(folded.count(letter) for letter in letters)
    # Vietnamese tone marks live in Latin Extended Additional (ạ ả ấ ầ ...).
    scores["vi"] += sum(0x1EA0 <= ord(char) <= 0x1EF9 for char in folded)
    best = max(scores.values())
    # Ties go to the first language in LANGUAGES order; no evidence at all means English.
    return next(code for code in LANGUAGES if scores[code] == best) if best else "en"


def detect_language(text: str) -> str:
    """The language code of `text` by script (Kana → ja, Han → zh, Hangul → ko, Cyrillic → ru,
    Arabic → ar, Thai → th) and, for Latin, stop words and distinctive letters (default en).
    Deterministic rules, no model; the script with the most (weighted) letters wins."""
    text = unicodedata.normalize("NFC", text)
    counts: Counter[str] = Counter()
    for char in text:
        script = _script(char)
        if script is not None:
            counts[script] += _SCRIPT_WEIGHT.get(script, 1)
    counts["cjk"] = counts.pop("kana", 0) + counts.pop("han", 0)
    script, weight = max(counts.items(), key=lambda item: item[1], default=("latin", 0))
    if weight == 0 or script == "latin":
        return _latin_language(text)
    if script == "cjk":
        return "ja" if any(_script(char) == "kana" for char in text) else "zh"
    return _SCRIPT_LANGUAGE[script]


def is_spaced_word_char(char: str) -> bool:
    """A letter or digit of a script that separates words with spaces; CJK, Kana, Hangul
    (its particles attach to nouns) and Thai do not bound a word, so "用Python写" matches."""
    return (char.isalnum() or char == "_") and _script(char) not in _UNSPACED
