"""Names and places the capitalised-run recognizer misses: lower case, other languages, CJK.

Three signals, each needing its own evidence: a strong cue ("my name is", "je m'appelle",
"меня зовут", "我叫") takes the next words unless they are function words; a weak cue
("i'm", "thanks", "ich bin") takes them only if the first is a listed given name; and a
listed given name followed by a listed surname is a name anywhere. CJK names are taken
after cue words or before honorifics (さん, 씨, 先生) when they start with a listed surname.
"""

from __future__ import annotations

import regex
from presidio_analyzer import LocalRecognizer

from utils.privacy.intl_recognizers import _result
from utils.privacy.recognizers import lexicon

_STRONG = (
    r"my\sname\sis|my\sname's|my\sfull\sname\sis|full\sname[:\s]|name\s?:|i\sam\scalled|"
    r"call\sme|signed,?|ich\shei(?:ß|ss)e|mein\sname\sist|je\sm['’]appelle|mon\snom\sest|"
    r"moi\sc['’]est|me\sllamo|mi\snombre\ses|mi\schiamo|il\smio\snome\sè|meu\snome\sé|"
    r"me\schamo|mijn\snaam\sis|ik\sheet|nazywam\ssię|mam\sna\simię|jag\sheter|benim\sadım|"
    r"меня\sзовут|мо[её]\sимя|моя\sфамилия|с\sуважением,?")
_WEAK = (
    r"i['’]m|i\sam|this\sis|it['’]s|hi|hello|hey|dear|thanks|thank\syou|regards|best\sregards|"
    r"kind\sregards|cheers|contact|ask\sfor|speak\sto|talk\sto|colleague|manager|wife|husband|"
    r"ich\sbin|hallo|grüße|gruß|viele\sgrüße|je\ssuis|bonjour|cordialement|merci|soy|hola|"
    r"saludos|un\ssaludo|gracias|sono|ciao|grazie|saluti|sou|olá|obrigad[oa]|ik\sben|groeten|"
    r"jestem|pozdrawiam|dzięki|это|я|привет|спасибо")
_NAME_WORD = r"[\p{L}][\p{L}'’-]*"
_CUE = regex.compile(rf"(?i)(?<![\p{{L}}])(?:(?P<strong>{_STRONG})|(?P<weak>{_WEAK}))"
                     r"(?![\p{L}])")
_NAMES = regex.compile(rf"[\s,:]+(?P<names>{_NAME_WORD}(?:\s{_NAME_WORD}){{0,4}})")
_PAIR = regex.compile(r"(?<![\p{L}'’-])(?P<first>\p{Ll}[\p{Ll}'’-]+)\s"
                      r"(?P<last>\p{Ll}[\p{Ll}'’-]+)(?![\p{L}'’-])")
_ADDRESS_WORDS = frozenset({"street", "road", "avenue", "lane", "drive", "straße", "strasse"})
_CJK_TERMINATOR = r"です|と申します|と言います|[。、，,.!?！？\s]|$"
_CJK_END = regex.compile(_CJK_TERMINATOR)
_PARTICLES = frozenset({"van", "von", "de", "der", "den", "del", "della", "di", "da", "das",
                        "dos", "du", "la", "le", "ter", "ten", "bin", "ibn", "al", "zu"})
_CJK_CUE = regex.compile(
    r"(?:我叫|我的名字是|我的名字叫|我是|姓名[:：]?|名字[:：]?|联系人[:：]?|聯絡人[:：]?|"
    r"私の名前は|名前は|氏名[:：]?|私は|わたしは|제\s?이름은|내\s?이름은|저는|이름[:：]?\s?)\s?"
    r"(?P<name>[\p{Han}\p{Katakana}ー][\p{Han}\p{Katakana}\p{Hiragana}ー]{1,7}?"
    rf"(?={_CJK_TERMINATOR})|[\p{{Han}}\p{{Katakana}}ー]{{1,5}}|"
    r"[\p{Hangul}]{2,8})")
_HONORIFIC = regex.compile(
    r"(?P<name>[\p{Han}\p{Katakana}]{1,4}|[\p{Hangul}]{2,4})\s?"
    r"(?:さん|様|さま|くん|ちゃん|先生|氏|씨|님|女士|小姐|老师|老師|教授)")
_KO_PARTICLE = regex.compile(r"(?:입니다|이에요|예요|이고|이며|이라고|라고|은|는|이|가)$")
_JA_STOP = "です"
_LIVE_CUE = regex.compile(
    r"(?i)(?<![\p{L}])(?:i\slive\sin|i['’]m\sbased\sin|based\sin|living\sin|moved\sto|"
    r"ich\swohne\sin|wohne\sin|j['’]habite\sà|vivo\sen|vivo\sa|moro\sem|woon\sin|"
    r"mieszkam\sw|я\sживу\sв|住在|我住在|に住んで)\s?(?P<place>[\p{L}-]+(?:\s[\p{L}-]+)?)")


class MultilingualNameRecognizer(LocalRecognizer):
    """PERSON in any case after cue words, lower-case listed pairs, and CJK names."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["PERSON"], name="MultilingualNameRecognizer")
        lex = lexicon()
        ambiguous = {w.casefold() for w in lex["ambiguous_given_names"]}
        ambiguous |= {w.casefold() for w in lex["lowercase_ambiguous_given_names"]}
        self._given = {w.casefold() for w in lex["given_names"]} - ambiguous
        self._surnames = {w.casefold() for w in lex["surnames"]} - {
            w.casefold() for w in lex["lowercase_ambiguous_surnames"]}
        self._function_words = lex["name_stop_words"]
        self._stop = self._function_words | {w.casefold() for w in lex["capitalized_non_names"]}
        self._cjk_surnames = lex["cjk_surnames"]

    def load(self) -> None:  # noqa: D102
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        spans = [*self._after_cues(text), *self._pairs(text), *self._cjk(text)]
        return [_result(self, "PERSON", s, e, score) for s, e, score in spans]

    def _after_cues(self, text: str):
        for cue in _CUE.finditer(text):
            after = _NAMES.match(text, cue.end())
            if after is None:
                continue
            words = list(regex.finditer(_NAME_WORD, after.group("names")))
            strong = cue.group("strong") is not None
            base = after.start("names")
            taken, particles = [], 0
            for i, word in enumerate(words):
                value = word.group().casefold().rstrip("'’-")
                if taken and value in _PARTICLES:  # "jasper van hagen", "nina da luz"
                    particles += 1
                    taken.append(word)
                    continue
                stop = self._function_words if strong else self._stop
                if value in stop or value in _ADDRESS_WORDS:
                    break
                listed = value in self._given or value in self._surnames
                if i == 0 and not (strong or value in self._given):
                    break  # after "i'm" / "thanks", only a listed given name starts a name
                if i - particles >= 2 and not (listed or word.group()[0].isupper()):
                    break  # a third word needs more than not being a function word
                taken.append(word)
            while taken and taken[-1].group().casefold() in _PARTICLES:
                taken.pop()
            if taken:
                yield base + taken[0].start(), base + taken[-1].end(), 0.9 if strong else 0.8

    def _pairs(self, text: str):
        for pair in _PAIR.finditer(text):
            if pair.group("first") in self._given and pair.group("last") in self._surnames:
                yield pair.start(), pair.end(), 0.75

    def _cjk(self, text: str):
        for match in _CJK_CUE.finditer(text):
            name = match.group("name")
            if "\uac00" <= name[0] <= "\ud7a3":  # Hangul: cut the trailing particle
                name = _KO_PARTICLE.sub("", name)[:4]
            name = name.split(_JA_STOP)[0]
            weak = match.group().startswith(("我是", "私は", "わたしは", "저는"))
            if len(name) < 2 or (weak and not self._starts_with_surname(name)):
                continue
            ended = _CJK_END.match(text, match.start("name") + len(name))
            if regex.fullmatch(r"\p{Han}+", name) and len(name) > 4 and not ended:
                name = name[:3]  # a Chinese name is two to four characters; the rest is text
            yield match.start("name"), match.start("name") + len(name), 0.85
        for match in _HONORIFIC.finditer(text):
            name = match.group("name")
            for size in range(len(name), 0, -1):  # the longest listed-surname-led suffix
                tail = name[len(name) - size:]
                if self._starts_with_surname(tail):
                    yield match.end("name") - size, match.end("name"), 0.85
                    break

    def _starts_with_surname(self, name: str) -> bool:
        return any(name.startswith(s) for s in self._cjk_surnames)


class LowercasePlaceRecognizer(LocalRecognizer):
    """LOCATION: a listed place in any case (or any CJK place) after "I live in" and the like."""

    def __init__(self) -> None:
        super().__init__(supported_entities=["LOCATION"], name="LowercasePlaceRecognizer")
        self._places = {p.casefold() for p in lexicon()["places"]}

    def load(self) -> None:  # noqa: D102
        pass

    def analyze(self, text, entities, nlp_artifacts=None):  # noqa: D102
        results = []
        for match in _LIVE_CUE.finditer(text):
            place = match.group("place")
            start = match.start("place")
            if regex.match(r"[\p{Han}\p{Hiragana}\p{Katakana}]", place):
                han = regex.match(r"\p{Han}{2,4}", place)
                if han:
                    results.append(_result(self, "LOCATION", start, start + han.end(), 0.7))
                continue
            words = place.split()
            for size in (len(words), 1):
                candidate = " ".join(words[:size])
                if candidate.casefold() in self._places:
                    results.append(_result(self, "LOCATION", start, start + len(candidate),
                                           0.7))
                    break
        return results
