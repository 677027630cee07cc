"""Presidio recognizers for the PII types the stock pattern set misses or gets too slowly.

Everything here is deterministic and offline: Presidio `PatternRecognizer`s (regexes, with
cue words near the match for weak formats) plus two list-based recognizers (person names,
places) fed by the hand-written word lists in `pii_lexicon.json`.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

import phonenumbers
import regex
from presidio_analyzer import (
    EntityRecognizer,
    LocalRecognizer,
    Pattern,
    PatternRecognizer,
    RecognizerResult,
)
from presidio_analyzer.predefined_recognizers import IpRecognizer

_LEXICON_PATH = Path(__file__).with_name("pii_lexicon.json")
_CASE = regex.DOTALL | regex.MULTILINE  # case-sensitive: capitals carry the signal for names
_NOCASE = _CASE | regex.IGNORECASE

# A capitalised name-like word: Maria, McDonald, O'Brien, D'Angelo, Jean-Pierre, Łukasz.
_NAME_WORD = (r"(?:\p{Lu}\p{Ll}*['’]\p{Lu}\p{Ll}+|\p{Lu}[\p{Ll}]*\p{Lu}?\p{Ll}+)"
              r"(?:-\p{Lu}\p{Ll}+)?")
_PARTICLE = r"(?:van|von|de|der|den|del|della|di|da|das|dos|du|la|le|ter|ten|bin|ibn|al|zu)"
_NAME_RUN = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}@._-]){_NAME_WORD}(?:\s(?:{_PARTICLE}\s){{0,2}}{_NAME_WORD}){{0,3}}"
    r"(?![\p{L}\p{N}@-])",
    _CASE,
)
_WORD = regex.compile(_NAME_WORD, _CASE)
_STRONG_PERSON_CUE = regex.compile(
    r"(?i:my name is|my name's|name:|signed,?|sincerely,?|regards,?|best wishes,?|cheers,?|"
    r"call me|dear|mr\.?|mrs\.?|ms\.?|dr\.?|prof\.?|herr|frau|mme\.?|madame|monsieur|"
    r"señora?|sr\.|sra\.|sig\.(?:ra)?|signora?)\s*[,:]?\s*$"
)
_WEAK_PERSON_CUE = regex.compile(
    r"(?i:\bI'm|\bI am|\bthis is|\bit's|\bcontact|\bask for|\bspeak (?:to|with)|\btalk to|"
    r"\bassigned to|\bcolleague|\bmanager|\bwife|\bhusband|\bson|\bdaughter|\bfriend|\bhi|"
    r"\bhello|\bhey|\bthanks|\bthank you|\bcc|\baccount holder|\bholder|\bforward (?:this|it) to|"
    r"\bfrom|\bwith|\bby|\bfor|\band|\bto|\babout)\s*[,:]?\s*$"
)
# Cues that introduce a person but also often a place or company; names need list support.
_AMBIGUOUS_CUES = ("from", "with", "by", "for", "and", "to", "about")
_LEAD_CUES = frozenset({"contact", "thanks", "hi", "hello", "hey", "dear", "regards", "cheers",
                        "best", "ask", "cc", "attn", "signed"})
_STRONG_LEADS = frozenset({"Dear", "Mr", "Mrs", "Ms", "Dr", "Prof", "Herr", "Frau", "Mme",
                           "Signed", "Attn"})
# Text right after a run that marks it as a person: "Maria here", "Maria, our CTO", "Maria (m@x)".
_PERSON_AFTER = regex.compile(r"\s+here\b|,\s(?:our|my|your)\s|\s\([\w.+-]+@")
# Words after a capitalised word that make it a technical eponym (Thompson sampling, Adam).
_TECH_FOLLOWER = regex.compile(
    r"\s*(?:-\s*)?(?i:learning|sampling|equations?|process(?:es)?|chains?|decision|optimality|"
    r"operators?|backups?|distributions?|exploration|polic(?:y|ies)|networks?|methods?|"
    r"algorithms?|theorem|inequality|bounds?|rule|error|search|trees?|updates?|estimat\w*|"
    r"optimi[sz]er|machines?|noise|agents?|models?|prior|posterior|kernels?|games?|"
    r"equilibri\w*|filters?|matrix|divergence|distance|criterion|tests?|iteration|expansion|"
    r"series|transform|approximation|steps?|architecture|planning|variant|style|\(\s*λ)"
)
_POSSESSIVE = regex.compile(r"['’]s$")


@lru_cache(maxsize=1)
def lexicon() -> dict[str, frozenset[str] | tuple[str, ...]]:
    """Load the word lists once (names, places, titles, eponyms)."""
    raw = json.loads(_LEXICON_PATH.read_text(encoding="utf-8"))
    return {key: frozenset(value) for key, value in raw.items() if isinstance(value, list)}


def _cue_window(text: str, start: int, width: int) -> str:
    return text[max(0, start - width):start]


class CuedPatternRecognizer(PatternRecognizer):
    """A pattern recognizer whose weak matches count only after a cue word.

    Matches scored below `cue_required_below` (weak formats such as a bare 9-digit number)
    are kept only if `cue` matches the `window` characters before them, then scored `cued_score`.
    """

    def __init__(self, *, cue: str, window: int = 32, cue_required_below: float = 0.5,
                 cued_score: float = 0.7, cue_only: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self._cue = regex.compile(cue, _NOCASE)
        self._window = window
        self._threshold = cue_required_below
        self._cued_score = cued_score
        self._cue_only = cue_only  # every match needs a cue: skip texts without one

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        if self._cue_only and not self._cue.search(text):
            return []
        kept = []
        for result in super().analyze(text, entities, nlp_artifacts, regex_flags):
            if result.score < self._threshold:
                if not self._cue.search(_cue_window(text, result.start, self._window)):
                    continue
                result.score = self._cued_score
            kept.append(result)
        return kept


class PhoneRecognizer(CuedPatternRecognizer):
    """International and national phone numbers; validated by format and `phonenumbers`.

    Presidio's own PhoneRecognizer runs libphonenumber's matcher once per region (~4 ms per
    message); a single candidate regex plus a parse of each candidate is ~50x cheaper.
    """

    _US = regex.compile(r"^(?:\+?1[\s.-]?|001[\s.-]?)?\(?\d{3}\)?[\s.-]?\d{3}[\s.-]\d{4}$")
    _NATIONAL = regex.compile(r"^\(?0\d{1,4}\)?(?:[\s./-]?\d{2,5}){1,5}$")
    _SSN_SHAPE = regex.compile(r"^\d{3}-\d{2}-\d{4}$")

    def __init__(self) -> None:
        candidate = (r"(?<![\w.+/-])(?:\+|00)?(?:\(?\d{1,4}\)?[\s.-]?)(?:\(0\)\s?)?"
                     r"\d{1,5}(?:[\s./-]?\d{2,5}){1,5}(?![\w-]|\.\d)")
        super().__init__(
            supported_entity="PHONE", name="PhoneRecognizer",
            patterns=[Pattern("phone candidate", candidate, 0.3)],
            cue=r"\b(?:phone|tel|telephone|mobile|cell|call|whatsapp|fax|reach me|text me|"
                r"number|ring|handy|telefon|téléphone|móvil|cellulare|portable|numéro|"
                r"teléfono|telefone|telefono|celular|nummer|numer|telefonnummer|"
                r"тел|телефон|номер|мобильный)\b|电话|電話|手机|手機|号码|號碼|联系|聯絡|"
                r"致电|打给|携帯|番号|연락처|전화|번호|핸드폰",
            window=40)

    def validate_result(self, pattern_text: str) -> bool | None:  # noqa: D102
        digits = sum(ch.isdigit() for ch in pattern_text)
        if not 7 <= digits <= 15:
            return False
        if pattern_text.startswith(("+", "00")):
            try:
                number = phonenumbers.parse(
                    "+" + pattern_text.lstrip("+0") if pattern_text.startswith("00")
                    else pattern_text, None)
            except phonenumbers.NumberParseException:
                return None
            return True if phonenumbers.is_possible_number(number) else None
        if self._SSN_SHAPE.match(pattern_text):
            return None  # the SSN recognizer owns this shape; a phone cue can still claim it
        if self._US.match(pattern_text) or (
                9 <= digits <= 12 and self._NATIONAL.match(pattern_text)
                and (any(not ch.isdigit() for ch in pattern_text) or digits >= 10)):
            return True
        return None  # plausible digits, unknown format: needs a cue word


class SsnRecognizer(CuedPatternRecognizer):
    """US social security numbers; dashed form alone, spaced or bare forms after a cue."""

    def __init__(self) -> None:
        super().__init__(
            supported_entity="US_SSN", name="SsnRecognizer",
            patterns=[Pattern("ssn dashed", r"\b\d{3}-\d{2}-\d{4}\b", 0.85),
                      Pattern("ssn spaced or bare", r"\b\d{3}(?: ?)\d{2}(?: ?)\d{4}\b", 0.3)],
            cue=r"\b(?:ssn|social security|social sec|soc\. sec)", window=40, cued_score=0.9)

    def invalidate_result(self, pattern_text: str) -> bool:  # noqa: D102
        digits = "".join(ch for ch in pattern_text if ch.isdigit())
        area, group, serial = digits[:3], digits[3:5], digits[5:]
        return area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000"


def _cued_id(entity: str, candidate: str, cue: str, window: int = 40,
             flags: int = _NOCASE) -> CuedPatternRecognizer:
    return CuedPatternRecognizer(
        supported_entity=entity, name=f"{entity.title().replace('_', '')}Recognizer",
        patterns=[Pattern(f"{entity.lower()} candidate", candidate, 0.3)],
        cue=cue, window=window, global_regex_flags=flags, cued_score=0.85, cue_only=True)


_DATE = (r"\b(?:\d{4}-\d{2}-\d{2}|\d{1,2}[./-]\d{1,2}[./-](?:\d{4}|\d{2})|"
         r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\.? "
         r"\d{1,2}(?:st|nd|rd|th)?,? "
         r"\d{4}|\d{1,2}(?:st|nd|rd|th)?(?: of)? (?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|"
         r"nov|dec)[a-z]*\.?,? \d{4})\b")


def identifier_recognizers() -> list[EntityRecognizer]:
    """Driving licence, date of birth and account/order/reference numbers."""
    code = r"\b(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{4,24}\b"
    return [
        _cued_id("DRIVER_LICENSE", r"\b(?=[A-Z0-9-]*\d)[A-Z][A-Z0-9-]{5,16}\b|\b\d{7,12}\b",
                 r"driv(?:er'?s?|ing) licen[cs]e|\bDL\b|licen[cs]e (?:no|number|#)|führerschein",
                 flags=_CASE),
        _cued_id("DATE_OF_BIRTH", _DATE,
                 r"\bborn\b|\bbirth|\bdob\b|d\.o\.b|birthday|geboren|\bnée?\b|nacid[oa]", 40),
        _cued_id("REFERENCE_NUMBER", code,
                 r"\b(?:order|account|acct|reference|ref|ticket|invoice|customer|member(?:ship)?|"
                 r"booking|confirmation|tracking|transaction|contract|claim|subscription|"
                 r"(?:case|policy) (?:no|number|id|#))\b", 36, flags=_CASE),
    ]


_STREET_SUFFIX = (
    r"(?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|Court|Ct|Place|Pl|Way|"
    r"Terrace|Ter|Parkway|Pkwy|Circle|Cir|Highway|Hwy|Square|Sq|Trail|Trl|Crossing|Xing|Loop|"
    r"Plaza|Ridge|Run|Path|Pike|Alley|Row|Walk|Point|Park|Heights|Hills?|Gardens?|Grove|Glen|"
    r"Green|Meadows?|Mews|Close|Crescent|Cres|View|Vista|Villages?|Valley|Springs?|Station|"
    r"Summit|Shores?|Shoals?|Stravenue|Squares?|Rapids|Port|Pines|Orchard|Oval|Overpass|Mall|"
    r"Manors?|Lakes?|Junctions?|Islands?|Harbors?|Haven|Groves|Gateway|Fork|Forks|Falls|"
    r"Extensions?|Estates?|Dale|Creek|Cove|Corners?|Common|Camp|Burgs?|Brooks?|Branch|Bridge|"
    r"Bypass|Bluffs?|Bayou|Canyon|Cape|Causeway|Center|Centre|Cliffs?|Club|Crest|Curve|Dam|"
    r"Divide|Expressway|Ferry|Fields?|Flats?|Ford|Forest|Fort|Freeway|Knolls?|Landing|Light|"
    r"Lodge|Mill|Mills|Mission|Motorway|Mount|Mountains?|Neck|Parks|Passage|Plains?|Prairie|"
    r"Radial|Ranch|Rest|Route|Shore|Skyway|Spur|Stream|Throughway|Trace|Track|Tunnel|Turnpike|"
    r"Union|Unions|Viaduct|Ville|Vista|Wall|Well|Wells|Ways|River|Rivers|Isle|Key|Keys|Pass|"
    r"Lock|Locks|Meadow|Hollow|Inlet|Harbor|Harbour|Garden|Commons|Spurs|Underpass|Port|Ports|"
    r"Roads|Streets|Trafficway|Drives|Courts|Lights|Loaf|Motorway|Ramp|Oval)\.?"
)
_UNIT = (r"(?:,?\s(?:Apt\.?|Apartment|Suite|Ste\.?|Unit|#|Floor|Fl\.?|Piso|Puerta|Piano|"
         r"Interno|Escalera|Bajos|Esc\.)\s?\w{1,6}){0,2}")
_CAP = r"\p{Lu}[\p{L}'’.-]*"
_EU_PREFIX = (r"(?:Calle|C/|Avenida|Avda\.?|Paseo|Plaza|Pasaje|Ronda|Camino|Carrer|Carretera|"
              r"Rambla|Cuesta|Acceso|Callejón|Cañada|Pasadizo|Urbanización|Vía|Vial|Canale|"
              r"Rotonda|Incrocio|Stretto|Lungomare|Lungotevere|"
              r"Travesía|Glorieta|Via|Viale|Piazza|Piazzale|Corso|Vicolo|Largo|Contrada|Borgo|"
              r"Strada|Rua|Travessa|Alameda|Praça|Avenue|Rue|Boulevard|Chemin|Impasse|Allée|Quai|"
              r"ul\.|ulica|al\.|aleja|pl\.|plac|rue|avenue|boulevard|chemin|impasse|allée|quai|"
              r"place|route|square|cours|Am|An der|Auf der|Im|Zum|Zur)")
_EU_STREET_WORD = (r"\p{Lu}[\p{L}-]*(?i:straße|strasse|str\.|weg|gasse|allee|platz|ring|damm|"
                   r"ufer|chaussee|steig|pfad|graben|markt|straat|laan|plein|gracht|kade|singel|"
                   r"dijk|baan|hof|vej|gade|gatan|vägen|väg|katu|tie|steeg|dreef|pad|park|"
                   r"plantsoen|wal|erf|hoek|veld)")
_EU_TAIL = (r"(?:\s?,?\s\d{2}-\d{3}|\s?,?\s\d{4,5}(?:\s?[A-Z]{2})?)"
            r"\s\p{Lu}[\p{L}'’-]+(?:\s\p{Lu}[\p{L}'’-]+)?")
_US_TAIL = r"(?:,\s(?:\p{Lu}[\p{L}.'’-]+\s){0,3}\p{Lu}[\p{L}'’-]+,\s[A-Z]{2}\s\d{5}(?:-\d{4})?)"


def address_recognizer() -> PatternRecognizer:
    """Street addresses in US (number first) and European (name first or number last) forms."""
    us = (rf"\b\d{{1,6}}\s(?:[NSEW]\.?\s)?(?:{_CAP}\s){{1,4}}{_STREET_SUFFIX}{_UNIT}"
          rf"(?:{_US_TAIL}|{_EU_TAIL})?")
    fr = (rf"\b\d{{1,4}}(?:\s?(?:bis|ter))?,?\s(?:{_EU_PREFIX})\s(?:[\p{{L}}'’-]+\s){{0,4}}?"
          rf"\p{{Lu}}[\p{{L}}'’-]+(?:{_EU_TAIL})?")
    eu_prefix = (rf"\b{_EU_PREFIX}\s(?:[\p{{L}}'’-]+\s){{0,4}}?"
                 rf"\p{{Lu}}[\p{{L}}'’-]+,?\s\d{{1,4}}[a-zA-Z]?\b{_UNIT}(?:{_EU_TAIL})?")
    eu_suffix = (rf"\b(?:{_CAP}\s)?{_EU_STREET_WORD}\s\d{{1,4}}(?:/\d{{1,4}})?\s?[a-zA-Z]?\b"
                 rf"(?:{_EU_TAIL})?")
    return PatternRecognizer(
        supported_entity="STREET_ADDRESS", name="StreetAddressRecognizer",
        patterns=[Pattern("us street", us, 0.85), Pattern("fr street", fr, 0.85),
                  Pattern("eu street prefix", eu_prefix, 0.85),
                  Pattern("eu street suffix", eu_suffix, 0.85)],
        global_regex_flags=_CASE)


_LEGAL_SUFFIX = (r"(?:GmbH\s&\sCo\.\sKG|AG\s&\sCo\.\sKG|GmbH|gGmbH|AG|KGaA|KG|GbR|OHG|e\.\s?V\.|"
                 r"e\.G\.|SE|Inc\.?|Incorporated|LLC|L\.L\.C\.|LLP|Ltd\.?|Limited|Corp\.?|"
                 r"Corporation|PLC|plc|S\.A\.S\.?|SAS|SARL|S\.A\.R\.L\.|S\.A\.|SA|S\.L\.(?:N\.E)?|"
                 r"SL|S\.p\.A\.|SpA|SPA|S\.r\.l\.|Srl|s\.r\.l\.|B\.V\.|BV|N\.V\.|NV|Oy|Oyj|AB|A/S|"
                 r"ApS|ASA|Sp\.\s?z\so\.o\.|Sp\.j\.|Sp\.k\.|S\.C\.|S\.Com\.|S\.Coop\.|S\.L\.L\.|"
                 r"S\.A\.T\.|S\.L\.U\.|S\.A\.U\.|S/A|Ltda\.?|s\.r\.o\.|Kft\.|Zrt\.|Pty\sLtd|"
                 r"Co\.|e\sHijos|y\sHermanos|"
                 r"Group|Holdings?|Partners|Technologies|Labs|Systems|Solutions|Consulting|"
                 r"e\sfigli|et\sFils|y\sAsociados|&\sSons)")
_ORG_RUN = (r"\p{Lu}[\p{L}\p{N}'’.-]*(?:(?:\s|,\s|\s&\s|\sand\s|\set\s|\se\s|\sy\s|-)"
            r"(?!I\b)\p{Lu}[\p{L}\p{N}'’.-]*){0,5}")
_TITLE_HEAD = (r"\p{L}+(?:ist|eer|er|or|ian|ant|ent|ive|ect|ch|ef|ot|ge|se)")
_NOT_TITLE = (r"(?!(?:beginner|newcomer|user|fan|member|customer|learner|reader|follower|"
              r"subscriber|player|parent|fellow|bit|lot|little|big|student|ent|first|second)\b)")
_ORG_CUE = (r"(?i:\bwork(?:s|ing|ed)?\s(?:at|for)|\bemployed\s(?:at|by)|\bemployee\sof|"
            r"\bemployer(?:\sis)?|\bcompany(?:\sis|\scalled|\snamed)?|\bI'm\swith|\bjoined|"
            r"\bon\sbehalf\sof|\bcustomer\sat|\bbill|\b(?:invoice|receipt|quote)\s[\w-]+\sfor|"
            r"\b(?:work|office|company)\s(?:address|email|e-mail|phone)\sat|"
            r"\b(?:" + _TITLE_HEAD + r")s?\sat)\s")


def organization_recognizer() -> PatternRecognizer:
    """Organisations by legal suffix (GmbH, Inc., S.A., ...) or by a cue such as "I work at"."""
    suffixed = (rf"(?<![\p{{L}}-])(?:\p{{Lu}}[\p{{L}}\p{{N}}'’.-]*"
                r"(?:,\s|\s&\s|\sand\s|\set\s|\sy\s|\s|-)){1,4}"
                rf"{_LEGAL_SUFFIX}(?![\p{{L}}\p{{N}}])")
    cued = rf"(?<={_ORG_CUE}(?:the\s)?){_ORG_RUN}"
    prefixed = (r"\b(?:Compañía|Grupo|Hermanos|Familia|Spółdzielnia|Fundacja|Fundación|"
                r"Stiftung|Groupe|Société|Gruppo|Banco|Bank|Universit\w+)\s"
                r"(?:\p{Lu}[\p{L}'’-]+\s?){1,3}")
    firm = (r"\b\p{Lu}\p{Ll}+(?:(?:,\s\p{Lu}\p{Ll}+)+,?\sand\s|\s&\s)\p{Lu}[\p{L}'’-]+")
    return _OrganizationRecognizer(
        supported_entity="ORGANIZATION", name="OrganizationRecognizer",
        patterns=[Pattern("legal suffix", suffixed, 0.9), Pattern("org cue", cued, 0.7),
                  Pattern("org prefix", prefixed, 0.9), Pattern("partner firm", firm, 0.75)],
        global_regex_flags=_CASE)


class _OrganizationRecognizer(PatternRecognizer):
    """Drops "Sutton and Barto"-style pairs and cue matches that are really people or words."""

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        lex = lexicon()
        reject = lex["eponyms"] | lex["capitalized_non_names"]
        kept = []
        for result in super().analyze(text, entities, nlp_artifacts, regex_flags):
            words = regex.findall(r"\p{L}+", text[result.start:result.end])
            if result.score < 0.9 and (any(w in reject for w in words)
                                       or words[0] in lex["given_names"]):
                continue
            kept.append(result)
        return kept


def job_title_recognizer() -> PatternRecognizer:
    """Job titles from a list, or any short phrase after a cue such as "I work as a"."""
    titles = sorted(lexicon()["job_titles"], key=len, reverse=True)
    heads = "|".join(sorted(lexicon()["job_title_heads"], key=len, reverse=True))
    listed = [t for t in titles if " " in t or t.upper() == t or len(t) <= 3]
    listed_re = r"\b(?:" + "|".join(regex.escape(t) for t in listed) + r")s?\b"
    strong_cue = (r"(?<=\b(?:work(?:ing)?\sas|job\stitle\sis|title\sis|role\sis|position\sis|"
                  r"occupation\sis|profession\sis|job\stitle:|title:|position:|occupation:|"
                  r"profession:|job\sis)\s(?:an?\s|the\s)?)")
    boundary = r"(?=\s*(?:[.,;!?()\n]|$|\s(?:at|for|in|with|and|but|so|since|from|on)\b))"
    cued_any = strong_cue + r"(?!an?\s|the\s)[\p{L}/&-]+(?:\s[\p{L}/&-]+){0,4}?" + boundary
    weak_cue = (r"(?<=\b(?:I'm|I\sam|she's|he's|as|works\sas|was)\s(?:an?\s|the\s)|"
                r",\s(?:our|my|your)\s)")
    cued_head = (weak_cue + _NOT_TITLE + rf"(?:[\p{{L}}-]+\s){{0,3}}?(?:{heads}|{_TITLE_HEAD})s?\b"
                 + boundary)
    before_org = (r"(?<=,\s)" + _NOT_TITLE + rf"(?:[\p{{L}}-]+\s){{0,3}}?(?:{heads}|{_TITLE_HEAD})"
                  r"(?=\sat\s\p{Lu})")
    return PatternRecognizer(
        supported_entity="JOB_TITLE", name="JobTitleRecognizer",
        patterns=[Pattern("title list", listed_re, 0.6), Pattern("title cue", cued_any, 0.7),
                  Pattern("title head", cued_head, 0.65),
                  Pattern("title before org", before_org, 0.65)])


class PersonRecognizer(LocalRecognizer):
    """Person names: runs of capitalised words judged by name lists, cue words and eponyms."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="PersonRecognizer")
        lex = lexicon()
        self._given = lex["given_names"] - lex["ambiguous_given_names"]
        self._surnames = lex["surnames"]
        self._stop = lex["capitalized_non_names"]
        self._places = lex["places"]
        self._eponyms = lex["eponyms"] - lex["surnames"] - lex["given_names"]
        self._all_eponyms = lex["eponyms"]

    def load(self) -> None:  # noqa: D102
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        results = []
        for run in _NAME_RUN.finditer(text):
            span = self._judge(text, run)
            if span:
                results.append(RecognizerResult(
                    "PERSON", span[0], span[1], span[2],
                    recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                          RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
        return results

    def _judge(self, text: str, run) -> tuple[int, int, float] | None:
        words = [(m.start() + run.start(), m.end() + run.start(), m.group())
                 for m in _WORD.finditer(run.group())]
        strong = weak = False
        # Leading greetings, honorifics and verbs like "Contact" are cues, not part of the name.
        while words and (words[0][2] in self._stop or words[0][2].lower() in _LEAD_CUES):
            lead = words.pop(0)[2]
            strong |= lead in _STRONG_LEADS
            weak |= lead.lower() in _LEAD_CUES
        while words and words[-1][2] in self._stop:
            words.pop()
        if not words:
            return None
        start, end = words[0][0], words[-1][1]
        if _POSSESSIVE.search(words[-1][2]):
            end -= 2
        names = [_POSSESSIVE.sub("", w[2]) for w in words]
        if any(n in self._stop for n in names) or " ".join(names) in self._places:
            return None
        before = _cue_window(text, start, 24)
        strong |= bool(_STRONG_PERSON_CUE.search(before))
        cue = _WEAK_PERSON_CUE.search(before)
        ambiguous_cue = bool(cue) and cue.group().strip(" ,:").lower() in _AMBIGUOUS_CUES
        weak |= (bool(cue) and not ambiguous_cue) or bool(_PERSON_AFTER.match(text, end))
        technical = bool(_TECH_FOLLOWER.match(text, end)) or names[-1] in self._eponyms or (
            len(names) == 1 and names[0] in self._all_eponyms)
        if strong:
            return start, end, 0.9
        if technical:
            return None
        listed = names[0] in self._given or (len(names) > 1 and names[-1] in self._surnames)
        if listed and (len(names) > 1 or weak or ambiguous_cue):
            return start, end, 0.85
        if weak:
            return start, end, 0.7
        mid_sentence = bool(regex.search(r"[\p{Ll},;:]\s+$", before))
        if len(names) > 1 and mid_sentence and not any(n in self._all_eponyms for n in names):
            return start, end, 0.6  # an unlisted "Firstname Lastname" inside a sentence
        return None


class LocationRecognizer(PatternRecognizer):
    """Cities and countries from a list, plus unlisted place names after a cue or by form."""

    def __init__(self) -> None:
        lex = lexicon()
        places = sorted(lex["places"] - lex["ambiguous_places"], key=len, reverse=True)
        listed = (r"(?<![\p{L}\p{N}-])(?:" + "|".join(regex.escape(p) for p in places)
                  + r")(?![\p{L}\p{N}-])")
        strong_cue = (r"(?<=\b(?i:live\sin|living\sin|lives\sin|based\sin|located\sin|"
                      r"moved\sto|moving\sto|relocat\w+\sto|born\sin|office\sin|branch\sin|"
                      r"store\sin|visiting|city\sof|town\sof|ship(?:ped)?\sto|issued\sin|"
                      r"deliver(?:ed)?\sto|travel\w*\sto|greetings\sfrom|I'm\sin|we're\sin|"
                      r"here\sin)\s)")
        weak_cue = r"(?<=\b(?i:from|in|near)\s)"
        place = (r"\p{Lu}\p{Ll}+(?:[\s-](?:(?:am|an|de|del|la|le|les|sur|sous|upon|on|en|aan|"
                 r"op|bij|ter|di|im|bei)[\s-])?\p{Lu}\p{Ll}+){0,2}(?![\p{L}\p{N}'’-])")
        shaped = (r"\b(?:(?:North|South|East|West|New|Lake|Port|Fort|Mount|Saint|Sainte|San|"
                  r"Santa|Bad)\s\p{Lu}\p{Ll}+|\p{Lu}\p{Ll}+(?:ville|town|burg|borough|bury|"
                  r"chester|haven|mouth|port|shire|stadt|furt|hausen|heim|dorf|ingen))\b")
        us_state = r"\b\p{Lu}\p{Ll}+(?:\s\p{Lu}\p{Ll}+)?(?=,\s[A-Z]{2}\b)"
        super().__init__(
            supported_entity="LOCATION", name="LocationRecognizer",
            patterns=[Pattern("listed place", listed, 0.7),
                      Pattern("place after strong cue", strong_cue + place, 0.65),
                      Pattern("place after weak cue", weak_cue + place, 0.5),
                      Pattern("place by form", shaped, 0.5), Pattern("city, ST", us_state, 0.5)],
            global_regex_flags=_CASE)
        self._not_places = frozenset({"Passport", "Airport", "Support", "Report", "Transport",
                                      "Import", "Export", "Viewport", "Sport"})
        place_words = {"North", "South", "East", "West", "New", "Old", "Saint", "St", "Lake",
                       "Port",
                       "Fort", "Mount", "Bad", "Upper", "Lower", "Great", "Little", "Big"}
        self._reject = (lex["capitalized_non_names"] | lex["eponyms"]) - lex["places"] - place_words
        self._given = lex["given_names"]
        self._surnames = lex["surnames"]

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        kept = []
        for result in super().analyze(text, entities, nlp_artifacts, regex_flags):
            words = text[result.start:result.end].replace("-", " ").split()
            if result.score < 0.7 and (
                    any(w in self._reject or w in self._not_places for w in words)
                    or _TECH_FOLLOWER.match(text, result.end)):
                continue
            if result.score < 0.6 and (words[0] in self._given or words[-1] in self._surnames):
                continue
            kept.append(result)
        return kept


class IpAddressRecognizer(IpRecognizer):
    """Presidio's IP patterns, skipped when the text has no dotted quad or colon group (~0.1 ms)."""

    _HINT = regex.compile(r"\d\.\d{1,3}\.\d|[0-9A-Fa-f]:[0-9A-Fa-f]*:")

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # noqa: D102
        if not self._HINT.search(text):
            return []
        return super().analyze(text, entities, nlp_artifacts, regex_flags)
