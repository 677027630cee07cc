"""Text normalisation for PII detection, with every character mapped back to the original.

People hide (or just type) values in ways the recognisers never see: full-width digits, a
zero-width space inside an email, `maria%40acme.de` in a URL, `maria [at] acme [dot] de`,
"zero seven seven zero ...", or a phone number glued to Chinese text. `normalize` rewrites
those forms into plain ones and keeps, for each output character, the span of original text
it came from, so a detection on the normalised text redacts exactly the original characters.

Passes, each skipped when it has nothing to do (plain ASCII text costs one regex search):
1. NFKC per grapheme cluster, format characters (zero-width, bidi, soft hyphen) removed,
   Unicode dashes between digits made `-`, and a space put between CJK and Latin/digits
   (so `\\b` and the recognisers' look-behinds see a boundary there);
2. `%XX` runs decoded as UTF-8 (and `+` as a space inside a URL query string);
3. obfuscated emails: `[at]`, `(dot)`, `{at}`, and "name at host dot tld" word forms;
4. spelled-out digit runs (EN/DE/FR/ES/IT words, "double"/"triple", "plus") made digits.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import regex

_CJK = r"\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
_CJK_CHAR = regex.compile(rf"[{_CJK}]")
_CLUSTER = regex.compile(r"\X")
_DASHES = frozenset("\u2010\u2011\u2012\u2013\u2014\u2212\ufe63\uff0d")
_NEEDS_PASS1 = regex.compile(r"[^\x00-\x7f]")
# What the Unicode pass changes in text that is already NFKC: format characters, dashes
# between digits, CJK touching Latin letters or digits.
_NEEDS_PASS1_ANYWAY = regex.compile(
    rf"\p{{Cf}}|\d[\u2010-\u2014\u2212\ufe63\uff0d]\d|[{_CJK}][A-Za-z0-9+]|[A-Za-z0-9+][{_CJK}]")
_PERCENT_RUN = regex.compile(r"(?:%[0-9A-Fa-f]{2})+")
_URL = regex.compile(r"(?i)\b(?:https?://|www\.)[^\s<>\"']+")
_BR_OPEN, _BR_CLOSE = r"[\[\(\{<]", r"[\]\)\}>]"
_AT_WORD = r"(?:at|arroba|chez|klammeraffe)"
_DOT_WORD = r"(?:dot|punkt|punto|point|ponto)"
_BRACKETED = regex.compile(
    rf"(?i)\s*{_BR_OPEN}\s*(?:(?P<at>{_AT_WORD}|@)|(?P<dot>{_DOT_WORD}|\.))\s*{_BR_CLOSE}\s*")
# "maria dot g at acme dot de": an at-word followed by a host with at least one dot-word,
# or a local part with a dot in it and a dotted host ("maria.g at acme.de").
_LOCAL = r"[\p{L}\p{N}_+-]+(?:(?:\s+" + _DOT_WORD + r"\s+|\.)[\p{L}\p{N}_+-]+)*"
_HOST_LABEL = r"[\p{L}\p{N}-]+"
_WORDY_EMAIL = regex.compile(
    rf"(?i)(?<![\p{{L}}\p{{N}}])(?P<local>{_LOCAL})\s+{_AT_WORD}\s+"
    rf"(?P<host>{_HOST_LABEL}(?:(?:\s+{_DOT_WORD}\s+|\.){_HOST_LABEL})+)(?![\p{{L}}\p{{N}}])")
_DOT_SPACED = regex.compile(rf"(?i)\s+{_DOT_WORD}\s+")
_HINT_OBFUSCATED = regex.compile(rf"(?i){_BR_OPEN}\s*(?:{_AT_WORD}|@|{_DOT_WORD}|\.)\s*"
                                 rf"{_BR_CLOSE}|\s{_AT_WORD}\s")

DIGIT_WORDS: dict[str, str] = {
    **dict.fromkeys(("zero", "oh", "o", "null", "zéro", "cero"), "0"),
    **dict.fromkeys(("one", "eins", "un", "une", "uno"), "1"),
    **dict.fromkeys(("two", "zwei", "zwo", "deux", "dos", "due"), "2"),
    **dict.fromkeys(("three", "drei", "trois", "tres", "tre"), "3"),
    **dict.fromkeys(("four", "vier", "quatre", "cuatro", "quattro"), "4"),
    **dict.fromkeys(("five", "fünf", "fuenf", "cinq", "cinco", "cinque"), "5"),
    **dict.fromkeys(("six", "sechs", "seis", "sei"), "6"),
    **dict.fromkeys(("seven", "sieben", "sept", "siete", "sette"), "7"),
    **dict.fromkeys(("eight", "acht", "huit", "ocho", "otto"), "8"),
    **dict.fromkeys(("nine", "neun", "neuf", "nueve", "nove"), "9"),
}
_REPEAT = {"double": 2, "doppel": 2, "triple": 3}
_DIGIT_TOKEN = (r"(?:(?:double|doppel|triple)[\s-]+)?(?:" + "|".join(
    sorted(map(regex.escape, DIGIT_WORDS), key=len, reverse=True)) + r"|\d+)")
# Five or more digit tokens in a row (at least three of them words), optionally after "plus".
_SPELLED_RUN = regex.compile(
    rf"(?i)(?<![\p{{L}}\p{{N}}])(?:(?:plus|\+)[\s,]*)?{_DIGIT_TOKEN}"
    rf"(?:(?:\s*[,-]\s*|\s+){_DIGIT_TOKEN}){{4,}}(?![\p{{L}}\p{{N}}])")
_TOKEN = regex.compile(rf"(?i)plus|\+|{_DIGIT_TOKEN}")
_HINT_SPELLED = regex.compile(
    r"(?i)\b(?:" + "|".join(sorted((w for w in DIGIT_WORDS if len(w) > 2), key=len,
                                   reverse=True)) + r")\b")


@dataclass(frozen=True)
class Normalized:
    """Normalised text; output character i came from original `[starts[i], ends[i])`."""

    text: str
    starts: tuple[int, ...]
    ends: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of normalised characters `[start, end)`."""
        if end <= start:
            raise ValueError(f"empty span {start}:{end}")
        return self.starts[start], self.ends[end - 1]


class _Builder:
    """Accumulates output pieces, each mapped to a span of the previous pass's text."""

    def __init__(self, prev: Normalized) -> None:
        self.prev = prev
        self.chars: list[str] = []
        self.starts: list[int] = []
        self.ends: list[int] = []

    def emit(self, piece: str, src_start: int, src_end: int) -> None:
        if src_end > src_start:
            start, end = self.prev.starts[src_start], self.prev.ends[src_end - 1]
        else:  # an inserted character sits, zero-width, at the boundary it marks
            at = (self.prev.starts[src_start] if src_start < len(self.prev.text)
                  else (self.prev.ends[-1] if self.prev.ends else 0))
            start = end = at
        for ch in piece:
            self.chars.append(ch)
            self.starts.append(start)
            self.ends.append(end)

    def copy(self, src_start: int, src_end: int) -> None:
        self.chars.extend(self.prev.text[src_start:src_end])
        self.starts.extend(self.prev.starts[src_start:src_end])
        self.ends.extend(self.prev.ends[src_start:src_end])

    def build(self) -> Normalized:
        return Normalized("".join(self.chars), tuple(self.starts), tuple(self.ends))


def identity(text: str) -> Normalized:
    """The text mapped onto itself."""
    positions = tuple(range(len(text)))
    return Normalized(text, positions, tuple(p + 1 for p in positions))


def _is_cjk(ch: str) -> bool:
    return bool(_CJK_CHAR.match(ch))


def _is_latin_or_digit(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "+")


def _unicode_pass(cur: Normalized) -> Normalized:
    text = cur.text
    out = _Builder(cur)
    last = ""
    for cluster in _CLUSTER.finditer(text):
        start, end = cluster.span()
        piece = "".join(ch for ch in unicodedata.normalize("NFKC", cluster.group())
                        if unicodedata.category(ch) != "Cf")
        if piece in _DASHES and start > 0 and end < len(text) and \
                text[start - 1].isdigit() and text[end].isdigit():
            piece = "-"
        if not piece:
            continue
        if last and ((_is_cjk(last) and _is_latin_or_digit(piece[0]))
                     or (_is_latin_or_digit(last) and _is_cjk(piece[0]))):
            out.emit(" ", start, start)
        if piece == cluster.group():
            out.copy(start, end)
        else:
            out.emit(piece, start, end)
        last = piece[-1]
    return out.build()


def _url_pass(cur: Normalized) -> Normalized:
    text = cur.text
    plus_spaces = {m.start() + i for m in _URL.finditer(text) if "?" in m.group()
                   for i, ch in enumerate(m.group()) if ch == "+" and i > m.group().find("?")}
    if plus_spaces:  # '+' is a space in a query string; same length, so same mapping
        text = "".join(" " if i in plus_spaces else ch for i, ch in enumerate(text))
        cur = Normalized(text, cur.starts, cur.ends)
    out = _Builder(cur)
    pos = 0
    for match in _PERCENT_RUN.finditer(text):
        out.copy(pos, match.start())
        raw = unquote_to_bytes(match.group())
        # Each decoded character maps to its own escapes (all of them for a UTF-8
        # sequence); a byte that decodes to nothing stays as it was.
        i = 0
        while i < len(raw):
            src = match.start() + 3 * i
            for width in (1, 2, 3, 4):
                try:
                    ch = raw[i:i + width].decode("utf-8")
                except UnicodeDecodeError:
                    continue
                out.emit(ch, src, src + 3 * width)
                i += width
                break
            else:
                out.copy(src, src + 3)
                i += 1
        pos = match.end()
    out.copy(pos, len(text))
    return out.build()


def _email_pass(cur: Normalized) -> Normalized:
    text = cur.text
    out = _Builder(cur)
    pos = 0
    for match in _BRACKETED.finditer(text):
        out.copy(pos, match.start())
        out.emit("@" if match.group("at") else ".", match.start(), match.end())
        pos = match.end()
    out.copy(pos, len(text))
    cur = out.build()
    text = cur.text
    out = _Builder(cur)
    pos = 0
    for match in _WORDY_EMAIL.finditer(text):
        local, host = match.group("local"), match.group("host")
        if not (_DOT_SPACED.search(local + " ") or _DOT_SPACED.search(host) or "." in local
                or regex.search(r"\d", local)):
            continue  # "meet me at acme.de" is not an email
        out.copy(pos, match.start())
        _emit_dotted(out, text, match.start("local"), match.end("local"))
        out.emit("@", match.end("local"), match.start("host"))
        _emit_dotted(out, text, match.start("host"), match.end("host"))
        pos = match.end()
    out.copy(pos, len(text))
    return out.build()


def _emit_dotted(out: _Builder, text: str, start: int, end: int) -> None:
    pos = start
    for dot in _DOT_SPACED.finditer(text, start, end):
        out.copy(pos, dot.start())
        out.emit(".", dot.start(), dot.end())
        pos = dot.end()
    out.copy(pos, end)


def _spelled_pass(cur: Normalized) -> Normalized:
    text = cur.text
    out = _Builder(cur)
    pos = 0
    for run in _SPELLED_RUN.finditer(text):
        tokens = list(_TOKEN.finditer(run.group()))
        if sum(not t.group().isdigit() and t.group() not in "+" for t in tokens) < 3:
            continue
        out.copy(pos, run.start())
        for token in tokens:
            word = token.group().casefold()
            s, e = run.start() + token.start(), run.start() + token.end()
            if word in ("plus", "+"):
                out.emit("+", s, e)
                continue
            repeat = 1
            head, _, tail = word.partition(" ") if " " in word else ("", "", word)
            if "-" in word and not tail.isdigit():
                head, _, tail = word.partition("-")
            if head in _REPEAT:
                repeat, word = _REPEAT[head], tail.strip(" -")
            out.emit(word if word.isdigit() else DIGIT_WORDS[word] * repeat, s, e)
        pos = run.end()
    out.copy(pos, len(text))
    return out.build()


def normalize(text: str) -> Normalized:
    """`text` with the four passes applied; `.text == text` when nothing needed changing."""
    cur = identity(text)
    if _NEEDS_PASS1.search(text) and (not unicodedata.is_normalized("NFKC", text)
                                      or _NEEDS_PASS1_ANYWAY.search(text)):
        cur = _unicode_pass(cur)
    if "%" in cur.text:
        cur = _url_pass(cur)
    if _HINT_OBFUSCATED.search(cur.text):
        cur = _email_pass(cur)
    if _HINT_SPELLED.search(cur.text):
        cur = _spelled_pass(cur)
    return cur
