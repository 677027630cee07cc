"""Recognizers for what people type outside tidy English: IDs, IBANs and postcodes in any case.

IBANs are found case-insensitively and kept only if the ISO 7064 mod-97 checksum holds;
national identifiers carry their own checksums where they have one (Spanish DNI/NIE, Chinese
resident ID, Brazilian CPF, Dutch BSN, Polish PESEL) and otherwise need a cue word in one of
several languages; UK postcodes and addresses, and lower-case street addresses, complete the
address set. Names and places in other scripts and cases live in `utils.privacy.names`.
"""

from __future__ import annotations

import datetime as dt

import regex
from presidio_analyzer import (
    EntityRecognizer,
    LocalRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerResult,
)
from presidio_analyzer.predefined_recognizers import EmailRecognizer
from presidio_analyzer.predefined_recognizers.generic.iban_patterns import regex_per_country

from utils.privacy.recognizers import _STREET_SUFFIX, CuedPatternRecognizer

_NOCASE = regex.DOTALL | regex.MULTILINE | regex.IGNORECASE
_CASE = regex.DOTALL | regex.MULTILINE
# Characters a value must not touch on either side (letters, digits, CJK all count).
_EDGE_L, _EDGE_R = r"(?<![\p{L}\p{N}])", r"(?![\p{L}\p{N}])"


def _result(recognizer: EntityRecognizer, entity: str, start: int, end: int,
            score: float) -> RecognizerResult:
    return RecognizerResult(entity, start, end, score, recognition_metadata={
        RecognizerResult.RECOGNIZER_NAME_KEY: recognizer.name,
        RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id})


def iban_is_valid(compact: str) -> bool:
    """ISO 13616: known country, its length, and the mod-97 checksum (case-insensitive)."""
    value = compact.upper()
    if len(value) < 15 or not value[:2].isalpha() or not value[2:4].isdigit():
        return False
    pattern = regex_per_country.get(value[:2])
    if pattern is not None and not regex.fullmatch(pattern.replace("[ ]?", ""), value):
        return False
    digits = "".join(str(int(ch, 36)) for ch in value[4:] + value[:4])
    return int(digits) % 97 == 1


class IbanRecognizer(LocalRecognizer):
    """IBANs in any case, grouped by spaces or dashes or not at all, checksum-validated."""

    _START = regex.compile(_EDGE_L + r"[A-Za-z]{2}\d{2}")
    _CHUNK = regex.compile(r"[ -]?([A-Za-z0-9]{1,4})")

    def __init__(self) -> None:
        super().__init__(supported_entities=["IBAN"], name="IbanRecognizer")

    def load(self) -> None:  # noqa: D102
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        results = []
        for start in self._START.finditer(text):
            # Grow chunk by chunk; every prefix that is a valid IBAN and ends at a boundary
            # is a candidate, and the longest wins (a trailing word never validates).
            pos, compact, best = start.end(), start.group(), None
            while len(compact) < 34:
                chunk = self._CHUNK.match(text, pos)
                if chunk is None:
                    break
                compact += chunk.group(1)
                pos = chunk.end()
                at_edge = pos == len(text) or not text[pos].isalnum()
                if at_edge and iban_is_valid(compact):
                    best = pos
            if best is not None:
                results.append(_result(self, "IBAN", start.start(), best, 1.0))
        return results


class TrimmedEmailRecognizer(EmailRecognizer):
    """Presidio's email pattern, with URL path and query parts cut off the local part."""

    _CUT = regex.compile(r".*[/=?&:#]")

    def validate_result(self, pattern_text: str):  # noqa: D102
        head = self._CUT.match(pattern_text, 0, pattern_text.index("@"))
        return super().validate_result(pattern_text[head.end():] if head else pattern_text)

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        for result in results:
            head = self._CUT.match(text, result.start, text.index("@", result.start))
            if head is not None:
                result.start = head.end()
        return [r for r in results if r.end > r.start and text[r.start] != "@"]


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def _dni_ok(value: str) -> bool:
    value = value.upper().replace("-", "").replace(" ", "")
    number = value[:-1]
    if number[0] in "XYZ":
        number = str("XYZ".index(number[0])) + number[1:]
    return number.isdigit() and _DNI_LETTERS[int(number) % 23] == value[-1]


def _cn_id_ok(value: str) -> bool:
    value = value.upper()
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    check = "10X98765432"[sum(int(d) * w for d, w in zip(value[:17], weights, strict=True)) % 11]
    try:
        dt.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    return check == value[17]


def _cpf_ok(value: str) -> bool:
    digits = [int(d) for d in value if d.isdigit()]
    if len(set(digits)) == 1:
        return False
    for n in (9, 10):
        total = sum(d * w for d, w in zip(digits[:n], range(n + 1, 1, -1), strict=True))
        if (total * 10 % 11) % 10 != digits[n]:
            return False
    return True


def _bsn_ok(value: str) -> bool:
    digits = [int(d) for d in value if d.isdigit()]
    return len(digits) == 9 and (sum(d * w for d, w in zip(
        digits[:8], range(9, 1, -1), strict=True)) - digits[8]) % 11 == 0


def _pesel_ok(value: str) -> bool:
    digits = [int(d) for d in value]
    weights = (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)
    return (10 - sum(d * w for d, w in zip(digits[:10], weights, strict=True)) % 10) % 10 \
        == digits[10]


class _ChecksumIdRecognizer(LocalRecognizer):
    """Identifier formats whose check digit makes a cue unnecessary."""

    FORMATS = (  # (name, pattern, validator or None for a shape that is specific enough)
        ("es dni/nie", r"[XYZxyz]?\d{7,8}-?[A-Za-z]", _dni_ok),
        ("cn resident id", r"\d{17}[\dXx]", _cn_id_ok),
        ("br cpf", r"\d{3}\.\d{3}\.\d{3}-\d{2}", _cpf_ok),
        ("kr rrn", r"\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])-[1-4]\d{6}", None),
        ("it codice fiscale", r"(?i:[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z])", None),
        ("uk nino spaced", r"(?i:[A-CEGHJ-PR-TW-Z]{2} \d{2} \d{2} \d{2} [A-D])", None),
    )

    def __init__(self) -> None:
        super().__init__(supported_entities=["NATIONAL_ID"], name="ChecksumIdRecognizer")
        self._formats = [(regex.compile(_EDGE_L + p + _EDGE_R), ok) for _, p, ok in self.FORMATS]

    def load(self) -> None:  # noqa: D102
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        return [_result(self, "NATIONAL_ID", m.start(), m.end(), 0.9)
                for pattern, ok in self._formats for m in pattern.finditer(text)
                if ok is None or ok(m.group())]


# Cue words for national identifiers, EN/DE/FR/ES/IT/PT/NL/PL/RU/CJK.
NATIONAL_ID_CUE = (
    r"national\s(?:id|identity|insurance)|\bnin[o]?\b|\bid\s?(?:card|number|no\.?|#)|"
    r"identity\s(?:card|number|document)|social\s(?:insurance|security)|\bsin\b|tax\s?id|"
    r"\bnhs\b|aadhaar|personalausweis|ausweis|steuer-?id|steuer-?identifikationsnummer|"
    r"sozialversicherungs|carte\s(?:d'|d’)?identit|\bcni\b|sécurité\ssociale|num[ée]ro\s"
    r"(?:fiscal|insee|nir)|\bnir\b|\bdni\b|\bnie\b|\bnif\b|documento\s(?:de\s)?identi|"
    r"c[ée]dula|\bcurp\b|\brut\b|codice\sfiscale|carta\sd'identit|\bcpf\b|\brg\b|\bbsn\b|"
    r"burgerservicenummer|\bpesel\b|dow[oó]d\sosobisty|\bинн\b|\bснилс\b|身份证|マイナンバー|"
    r"個人番号|주민등록번호|주민번호")
PASSPORT_CUE = (r"\bpass(?:port)?\b|passport|reisepass|passnummer|pass-?nr|passeport|"
                r"pasaporte|passaporto|passaporte|paspoort|paszport|паспорт|護照|护照|旅券|"
                r"パスポート|여권")


def national_id_recognizers() -> list[EntityRecognizer]:
    """Checksummed ID formats, plus any ID-shaped code after a national-ID cue word."""
    cued = CuedPatternRecognizer(
        supported_entity="NATIONAL_ID", name="CuedNationalIdRecognizer",
        patterns=[Pattern("code after cue", _EDGE_L + r"(?=[A-Za-z]*\d)[A-Za-z0-9]{6,20}"
                          + _EDGE_R, 0.3),
                  Pattern("digit groups after cue", _EDGE_L + r"(?:[A-Za-z]{1,3}[ .-]?)?\d"
                          r"(?:[ .-]?\d){4,24}(?:[ .-]?[A-Za-z]{1,2})?" + _EDGE_R, 0.3)],
        cue=NATIONAL_ID_CUE, window=40, cued_score=0.85, global_regex_flags=_CASE,
        cue_only=True)
    return [_ChecksumIdRecognizer(), cued]


_UK_POSTCODE = (r"(?:GIR ?0AA|[A-PR-UWYZ](?:\d[A-HJKPSTUW\d]?|[A-HK-Y]\d[ABEHMNPRV-Y\d]?)"
                r" ?\d[ABD-HJLNP-UW-Z]{2})")
_LOWER_STREET = (r"(?:street|st\.|road|rd\.?|avenue|ave\.?|lane|drive|boulevard|blvd\.?|"
                 r"close|crescent|terrace|gardens|mews|square|court|place|way)")
_LOWER_EU_STREET = r"[\p{L}-]+(?:straße|strasse|str\.|weg|gasse|allee|platz|ring)"
_FLAT = r"(?:(?:flat|apartment|apt\.?|unit)\s\d{1,4}[a-z]?,?\s)?"
_WORDS = r"[\p{L}'’-]+"


def address_recognizers() -> list[EntityRecognizer]:
    """UK postcodes and addresses; US/UK/DE street addresses typed in lower case."""
    postcode = _EDGE_L + _UK_POSTCODE + _EDGE_R
    uk = (_EDGE_L + _FLAT + r"\d{1,5}[a-z]?\s(?:" + _WORDS + r"\s){1,4}?" + _STREET_SUFFIX
          + r"(?:,?\s" + _WORDS + r"(?:\s" + _WORDS + r"){0,2})?,?\s" + _UK_POSTCODE + _EDGE_R)
    # Any house number, a few words and a full postcode: the postcode makes it an address.
    uk_any = (_EDGE_L + _FLAT + r"\d{1,5}[a-z]?(?:,?\s" + _WORDS + r"){1,6},?\s" + _UK_POSTCODE
              + _EDGE_R)
    lower_us = (_EDGE_L + _FLAT + r"\d{1,5}[a-z]?\s(?:[\p{L}'’-]+\s){1,3}?" + _LOWER_STREET
                + _EDGE_R + r"(?:,?\s[\p{L}'’-]+(?:\s[\p{L}'’-]+)?,?\s[a-z]{2}\s\d{5}"
                r"(?:-\d{4})?)?")
    lower_de = (_EDGE_L + _LOWER_EU_STREET + r"\s\d{1,4}[a-z]?" + _EDGE_R
                + r"(?:,?\s\d{5}\s[\p{L}-]+)?")
    return [
        _PostcodeRecognizer(
            supported_entity="STREET_ADDRESS", name="UkAddressRecognizer",
            patterns=[Pattern("uk address", uk, 0.9), Pattern("uk number to postcode", uk_any, 0.85),
                      Pattern("uk postcode", postcode, 0.6),
                      Pattern("lower-case street", lower_us, 0.8),
                      Pattern("lower-case eu street", lower_de, 0.8)],
            global_regex_flags=_NOCASE),
    ]


class _PostcodeRecognizer(PatternRecognizer):
    """Address patterns; a bare postcode counts in capitals, or in lower case after a cue."""

    # Every pattern ends in a postcode or a street word: texts with neither are skipped.
    _HINT = regex.compile(r"(?i)[a-z]\d[a-z\d]? ?\d[a-z]{2}\b|\b" + _LOWER_STREET + r"(?!\w)|"
                          + _LOWER_EU_STREET)
    _CUE = regex.compile(r"(?i:post\s?code|postal|\bzip\b|address|adresse|\blive|\blives|"
                         r"deliver|ship|send|\bflat\b|street|road|london)")

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        if not self._HINT.search(text):
            return []
        kept = []
        for result in super().analyze(text, entities, nlp_artifacts, regex_flags):
            value = text[result.start:result.end]
            if result.score == 0.6 and not value.isupper() and not self._CUE.search(
                    text, max(0, result.start - 48), result.start):
                continue  # "a3 2nd" is a typo, "SW1A 1AA" or "postcode sw1a 1aa" is a place
            kept.append(result)
        return kept
