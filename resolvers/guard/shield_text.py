"""The views of a text that the injection shield's rules match; see `resolvers.guard.shield`.

plain   NFKC (full-width -> half-width, styled letters), invisible characters removed
        (soft hyphens, zero-width and format characters, variation selectors, fillers),
        Unicode tag characters decoded to ASCII, runs of spaces collapsed (newlines kept),
        spaces between CJK characters (kanji, kana) dropped;
folded  plain, with letter-spaced words joined ("i g n o r e", "忽.略", "シ・ス・テ・ム"),
        underscores read as spaces, diacritics stripped and ß read as ss, Cyrillic, Greek,
        IPA and small-capital look-alikes and leetspeak (0->o 1->i 3->e 4->a 5->s 7->t @->a
        $->s) mapped inside words that mix them with Latin letters (not in e-mail addresses),
        and the traditional Chinese (and Japanese) characters the rules use simplified;
joined  the stretches of the folded view around words split by a hyphen, dash, dot or
        similar mark ("ig-nore", "instruc-\ntions", "sys.tem"), with those marks removed.
        It is a separate view so that ordinary compounds ("well-known") and addresses
        keep their marks where the rules expect them.

`languages` picks the rules worth running and what they see, which keeps a check fast:
English on any Latin letters; French, German or Spanish on the sentences that have more of
that language's common words (articles, pronouns, a few of the rules' key words) than of any
other's, so a terse attack with none of them is missed; Chinese on hanzi, Japanese on kana.
"""

from __future__ import annotations

import re
import unicodedata

# Normalisation tables: constant data, built once.
_INVISIBLE_RANGES = (
    (0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF), (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB), (0x1D173, 0x1D17A),
    (0xE0000, 0xE007F), (0xE0100, 0xE01EF),
)  # fmt: skip
_INVISIBLE: dict[int, int | None] = {
    cp: None for first, last in _INVISIBLE_RANGES for cp in range(first, last + 1)
}
_INVISIBLE.update({cp: cp - 0xE0000 for cp in range(0xE0020, 0xE007F)})  # "ASCII smuggling"
_INVISIBLE[0x2800] = 0x20  # braille blank, used as an invisible space
_HAS_INVISIBLE = re.compile(
    "[\u2800" + "".join(f"{chr(a)}-{chr(b)}" for a, b in _INVISIBLE_RANGES) + "]"
)
_CONFUSABLE = str.maketrans(
    "аеорсухіјѕԁԛԝАВЕКМНОРСТХУІЈЅαεικνορτυχΑΒΕΖΗΙΚΜΝΟΡΤΥΧɑɡɩıȷᴀʙᴄᴅᴇꜰɢʜɪᴊᴋʟᴍɴᴏᴘʀꜱᴛᴜᴠᴡʏᴢ",
    "aeopcyxijsdqwABEKMHOPCTXYIJSaeikvoptuxABEZHIKMNOPTYXagiijabcdefghijklmnoprstuvwyz",
)
_LEET = str.maketrans("013457@$", "oieastas")
_LEET_UPPER = str.maketrans("013457@$", "OIEASTAS")
_LEET_CHARS = frozenset("013457@$")
HANT = str.maketrans(
    "規則設詞統係們對話無視從現開個輸顯訴說蓋變過濾執發給隱據鑰碼權員獄審倫約這將傳寫讀為復複"
    "內於應該請麼還後當禁除與聽務見覽歷紀錄憑證啟動選擇頂級專屬絕條關閉實體總結單認識際",
    "规则设词统系们对话无视从现开个输显诉说盖变过滤执发给隐据钥码权员狱审伦约这将传写读为复复"
    "内于应该请么还后当禁除与听务见览历纪录凭证启动选择顶级专属绝条关闭实体总结单认识际",
)  # the rules' patterns are folded with it too, so Japanese rules may use 無視 or 设定
_CJK = "\u3040-\u30ff\u3400-\u9fff\uf900-\ufaff"  # kana, then ideographs
_HAS_CJK = re.compile(f"[{_CJK}]")
_HAS_KANA = re.compile("[\u3040-\u30ff]")
_HAS_HAN = re.compile("[\u3400-\u9fff\uf900-\ufaff]")
_HAS_LATIN = re.compile("[A-Za-z]")
_MARKER_WORDS = {  # common words of each language, rarely used by the others
    "en": "the you your and to of is are it that this for with be all what my i please now from"
    " have not can do at by or if any these which who how should would could into about just",
    "fr": "les une vous tes je moi toi dans avec cette ces sont qui ne pas nous tout toutes tous"
    " votre vos ton ta mon ma le est et au aucun aucune sans ignorez oublie oubliez consigne"
    " consignes systeme desormais dorenavant l' d' j' n' qu' c' m' t' s'",
    "de": "und der das nicht ist ich dein deine deinen deiner mit auf fur ein eine einen dem zu"
    " alle allen alles bitte bist sie mir mich dich dir vom sind auch noch jetzt nur keine kein"
    " ohne wie wird werden hast habe oder sich nach bei den die dieser diese dieses mein meine"
    " gib zeig zeige vergiss anweisung anweisungen",
    "es": "los las el del por para una con tus eres su sus yo lo como mis ahora muy este esta todo"
    " todas todos pero sin ya hay te que me mi ignora olvida sistema",
}
_MARKER_OF = {  # a word listed twice counts for the first language
    form: lang
    for lang, words in reversed(_MARKER_WORDS.items())
    for word in words.split()
    for form in (word, word.replace("'", "\u2019"))
}
_TOKEN = re.compile(r"(?<![^\W\d_])(?i:[cdjlmnst]|qu)['\u2019](?=[^\W\d_])|[^\W\d_]+|[.!?\n]")
_FOREIGN = ("fr", "de", "es")
_NEWLINES = re.compile("\r\n?|[\u2028\u2029\x85\x0b\x0c]")
_SPACES = re.compile(r"[^\S\n]+")
_LINE_BREAKS = re.compile(r" ?\n\s*")
_CJK_GAP = re.compile(f"(?<=[{_CJK}]) (?=[{_CJK}])")
_LETTER_SPACED = re.compile(r"(?<![^\W_])(?:[^\W_][ .\-_*·•・|~+/\\,]){2,}[^\W_](?![^\W_])")
_SPACING = re.compile(r"[ .\-_*·•・|~+/\\,]")
_UNDERSCORE = re.compile(r"(?<=[^\W_])_+(?=[^\W_])")
_HAS_ACCENT = re.compile("[\u00c0-\u024f\u1e00-\u1eff\u0300-\u036f]")
_MARKS = re.compile("[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]")
_ODD = "@$\u0131\u0237\u0250-\u02af\u0370-\u052f\u1d00-\u1d2b\ua730\ua731"  # leet, look-alikes
_WORD = f"A-Za-z0-9{_ODD}"
_FOLDABLE_WORD = re.compile(f"(?<![{_WORD}])[{_WORD}]*?[0-9{_ODD}][{_WORD}]*")  # linear
_EMAIL_TAIL = re.compile(r"\.[A-Za-z]")
_JOIN_WINDOW = 48  # characters kept around a split word: most rules' phrases are shorter
# A mark inside a word: hyphens and dashes (then maybe a space or a line break), dots and
# bullets. Digits are not letters here, so "555-0199" and "v1.2" are left alone.
_WORD_BREAK = re.compile(r"(?<=[^\W\d_])(?:[\-\u2010-\u2015][ \n]?|[.·•・*|~])(?=[^\W\d_])")


def clean(text: str) -> str:
    """Invisible characters removed or decoded, then NFKC."""
    if not text.isascii() and _HAS_INVISIBLE.search(text):
        text = text.translate(_INVISIBLE)
    return unicodedata.normalize("NFKC", text)


def collapse(text: str) -> str:
    """Spaces and line breaks collapsed; spaces between CJK characters dropped."""
    text = _LINE_BREAKS.sub("\n", _SPACES.sub(" ", _NEWLINES.sub("\n", text))).strip()
    return _CJK_GAP.sub("", text) if _HAS_CJK.search(text) else text


def normalise(text: str) -> str:
    """NFKC, invisible characters removed or decoded, whitespace collapsed; case is kept."""
    return collapse(clean(text))


def _fold_word(match: re.Match[str]) -> str:
    word = match.group().translate(_CONFUSABLE)
    letters = [c for c in word if c.isalpha()]
    if not word.isascii() or not letters or _EMAIL_TAIL.match(match.string, match.end()):
        return match.group()  # a word of another script, a number, an e-mail address
    if _LEET_CHARS.isdisjoint(word):
        return word
    upper = all(c.isupper() for c in letters)
    return word.translate(_LEET_UPPER if upper else _LEET)


def folded(cleaned: str) -> str:
    """The view most rules match (case kept), from `clean`'s output."""
    text = _LETTER_SPACED.sub(lambda m: _SPACING.sub("", m.group()), cleaned)
    text = collapse(_UNDERSCORE.sub(" ", text))
    if not text.isascii():
        if _HAS_ACCENT.search(text):
            text = unicodedata.normalize("NFC", _MARKS.sub("", unicodedata.normalize("NFD", text)))
            text = text.replace("ß", "ss").replace("ẞ", "SS")
        if _HAS_CJK.search(text):
            text = text.translate(HANT)
    return _FOLDABLE_WORD.sub(_fold_word, text)


def languages(view: str) -> dict[str, str]:
    """The languages whose rules run on a folded view, each with the text its rules see: the
    whole view, or for French, German and Spanish only the view's sentences in that language."""
    found = {"any": view}
    if _HAS_LATIN.search(view):
        found["en"] = view
        found.update(_foreign(view))
    if not view.isascii():
        if _HAS_HAN.search(view):
            found["zh"] = view
        if _HAS_KANA.search(view):
            found["ja"] = view
    return found


def _foreign(view: str) -> dict[str, str]:
    """The sentences with the most French, German or Spanish words (a tie counts from two words
    on), by language."""
    found: dict[str, list[str]] = {}
    counts = dict.fromkeys(_MARKER_WORDS, 0)
    start = 0
    for token in _TOKEN.finditer(view + "."):
        word = token.group().lower()
        if lang := _MARKER_OF.get(word):
            counts[lang] += 1
        elif word in ".!?\n":
            top = max(counts.values())
            leaders = [lang for lang, count in counts.items() if count == top]
            if top and (top >= 2 or len(leaders) == 1):  # a tie on one word says little
                for lang in leaders:
                    if lang in _FOREIGN:
                        found.setdefault(lang, []).append(view[start : token.end()])
            counts = dict.fromkeys(_MARKER_WORDS, 0)
            start = token.end()
    return {lang: "\n".join(sentences) for lang, sentences in found.items()}


def joined(folded_text: str) -> str:
    """Each split word of the folded view joined, with about 48 characters around it either
    side (whole words where there are spaces, neighbours merged), one window a line; "" if
    nothing was split."""
    windows: list[list[int]] = []
    for match in _WORD_BREAK.finditer(folded_text):
        start, end = match.start() - _JOIN_WINDOW, match.end() + _JOIN_WINDOW
        if start <= 0:
            start = 0
        elif (space := folded_text.find(" ", start, start + 20)) >= 0:
            start = space + 1  # start at a whole word
        if end >= len(folded_text):
            end = len(folded_text)
        elif (space := folded_text.rfind(" ", end - 20, end)) >= 0:
            end = space
        if windows and start <= windows[-1][1]:
            windows[-1][1] = max(windows[-1][1], end)
        else:
            windows.append([start, end])
    return "\n".join(_WORD_BREAK.sub("", folded_text[a:b]) for a, b in windows)
