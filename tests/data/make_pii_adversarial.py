"""Generate tests/data/pii_adversarial.jsonl: PII written the way people (and testers) type it.

Each family is one way the plain corpus's values get past a detector: lower case, other
languages and scripts, obfuscation, invisible characters, URLs, spelled-out digits, values
split across turns. Values come from seeded Faker in several locales (and, for weak-cue
names, from the lexicon's given names, which is what a weak cue can rely on).
Rows: {"family", "locale", "turns": [str], "entities": [{"turn", "type", "start", "end",
"value"}]}; `value` is the plain form ("maria@acme.de" for "maria [at] acme [dot] de").
Run `python tests/data/make_pii_adversarial.py` and commit the output.
"""

from __future__ import annotations

import json
import logging
import random
import re
from pathlib import Path

from faker import Faker

log = logging.getLogger(__name__)
OUT = Path(__file__).with_name("pii_adversarial.jsonl")
LEXICON = Path(__file__).resolve().parents[2] / "utils" / "privacy" / "pii_lexicon.json"
SEED = 16
PER_FAMILY = 24
# Families whose values are in the basic set; the rest are strict-only.
STRICT_ONLY_FAMILIES = ("lowercase_place",)

DIGITS = {
    "en": "zero one two three four five six seven eight nine".split(),
    "de": "null eins zwei drei vier fünf sechs sieben acht neun".split(),
    "fr": "zéro un deux trois quatre cinq six sept huit neuf".split(),
    "es": "cero uno dos tres cuatro cinco seis siete ocho nueve".split(),
}
ZW = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]


def _fullwidth(value: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in value)


def _zero_width(value: str, rng: random.Random) -> str:
    chars = list(value)
    for _ in range(max(1, len(chars) // 6)):
        chars.insert(rng.randrange(1, len(chars)), rng.choice(ZW))
    return "".join(chars)


def _dni(rng: random.Random) -> str:
    n = rng.randint(10_000_000, 99_999_999)
    return f"{n}{'TRWAGMYFPDXBNJZSQVHLCKE'[n % 23]}"


def _cn_id(rng: random.Random) -> str:
    body = (f"{rng.choice(['110105', '310104', '440305', '510107'])}"
            f"{rng.randint(1950, 2004)}{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
            f"{rng.randint(0, 999):03d}")
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return body + "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]


def _bsn(rng: random.Random) -> str:
    while True:
        head = [rng.randint(0, 9) for _ in range(8)]
        check = sum(d * w for d, w in zip(head, range(9, 1, -1), strict=True)) % 11
        if check < 10:
            return "".join(map(str, head)) + str(check)


def _nino(rng: random.Random) -> str:
    letters = "ABCEGHJKLMNPRSTWXYZ"
    digits = "".join(str(rng.randint(0, 9)) for _ in range(6))
    return (f"{rng.choice(letters)}{rng.choice(letters)} {digits[:2]} {digits[2:4]} "
            f"{digits[4:]} {rng.choice('ABCD')}")


def _spell(digits: str, lang: str, rng: random.Random) -> str:
    words = ["plus"] if digits.startswith("+") else []
    words += [DIGITS[lang][int(d)] for d in digits if d.isdigit()]
    return (", " if rng.random() < 0.2 else " ").join(words)


class Families:
    """One method per family, each returning (locale, [(template, {slot: (type, raw, plain)})])."""

    def __init__(self, rng: random.Random, fakers: dict[str, Faker], lexicon: dict) -> None:
        self.rng, self.f, self.lex = rng, fakers, lexicon

    def _name(self, locale: str) -> str:
        f = self.f[locale]
        return f"{f.first_name()} {f.last_name()}"

    def lowercase_name(self):
        rng = self.rng
        strong = [("en_US", "hi, my name is {n} and i can't open chapter 4"),
                  ("de_DE", "hallo, ich heiße {n} und habe eine frage zu ppo"),
                  ("fr_FR", "bonjour, je m'appelle {n}, comment marche le q-learning ?"),
                  ("es_ES", "hola, me llamo {n} y no entiendo sarsa"),
                  ("it_IT", "ciao, mi chiamo {n}, cos'è un mdp?"),
                  ("pt_BR", "olá, meu nome é {n}, o que é td learning?"),
                  ("nl_NL", "hoi, mijn naam is {n}, hoe werkt dqn?")]
        if rng.random() < 0.7:
            locale, template = rng.choice(strong)
            name = self._name(locale).lower()
        else:
            locale, template = "en_GB", rng.choice([
                "thanks, {n}", "i'm {n}, how does sarsa work?", "regards, {n}",
                "hi, this is {n} again about the refund"])
            given = rng.choice(sorted(set(self.lex["given_names"])
                                      - set(self.lex["ambiguous_given_names"])
                                      - set(self.lex["lowercase_ambiguous_given_names"])))
            name = f"{given} {self.f['en_GB'].last_name()}".lower()
        return locale, template, {"n": ("PERSON", name, name)}

    def lowercase_iban(self):
        locale = self.rng.choice(["de_DE", "fr_FR", "es_ES", "nl_NL", "it_IT", "en_GB"])
        iban = self.f[locale].iban().lower()
        if self.rng.random() < 0.6:
            iban = " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
        return locale, self.rng.choice(["refund to iban {v} please", "my iban is {v}",
                                        "überweisen sie an {v}, danke",
                                        "mi cuenta: {v}"]), {"v": ("IBAN", iban, iban)}

    def foreign_passport(self):
        code = self.rng.choice([
            f"C{self.rng.randint(10, 99)}X{self.rng.randint(10, 99)}T{self.rng.randint(10, 99)}",
            f"{self.rng.randint(10, 99)}AB{self.rng.randint(10000, 99999)}",
            f"XD{self.rng.randint(1000000, 9999999)}",
            f"{self.rng.randint(1000, 9999)} {self.rng.randint(100000, 999999)}"])
        locale, template = self.rng.choice([
            ("de_DE", "Meine Reisepassnummer ist {v}, gültig bis 2031."),
            ("de_DE", "Passnummer: {v}"),
            ("fr_FR", "Mon numéro de passeport est {v}."),
            ("es_ES", "Mi número de pasaporte es {v}, ¿lo necesitan?"),
            ("it_IT", "Il mio passaporto è {v}."),
            ("pt_BR", "Número do passaporte: {v}"),
            ("nl_NL", "Mijn paspoort heeft nummer {v}."),
            ("pl_PL", "Mój paszport: {v}"),
            ("ru_RU", "Мой паспорт {v}, выдан в 2019."),
            ("zh_CN", "我的护照号码是{v}。")])
        if self.rng.random() < 0.3:
            code = code.lower()
        return locale, template, {"v": ("PASSPORT", code, code)}

    def national_id(self):
        rng = self.rng
        locale, template, value = rng.choice([
            ("es_ES", "Mi DNI es {v}, ¿es correcto?", _dni(rng)),
            ("es_ES", "dni {v}", _dni(rng).lower()),
            ("zh_CN", "身份证号{v}，请帮我改一下", _cn_id(rng)),
            ("en_GB", "My national insurance number is {v}.", _nino(rng)),
            ("nl_NL", "Mijn BSN is {v}.", _bsn(rng)),
            ("de_DE", "Personalausweis-Nr. {v}",
             f"L{rng.randint(10, 99)}X{rng.randint(100, 999)}T{rng.randint(10, 99)}"),
            ("fr_FR", "Numéro de sécurité sociale : {v}",
             f"{rng.choice('12')} {rng.randint(50, 99)} {rng.randint(1, 12):02d} "
             f"{rng.randint(10, 95)} {rng.randint(100, 999)} {rng.randint(100, 999)} "
             f"{rng.randint(10, 97)}")])
        return locale, template, {"v": ("NATIONAL_ID", value, value)}

    def email_in_url(self):
        email = self.f["en_US"].email()
        encoded = email.replace("@", "%40")
        template, raw = self.rng.choice([
            ("see https://portal.example.com/users/{v}/settings", email),
            ("the link https://example.com/reset?email={v}&t=1 fails", encoded),
            ("https://example.com/u/{v} shows a 404", encoded),
            ("the form posts to /api/login?user={v}", encoded),
            ("<a href=\"mailto:{v}\">me</a>", email)])
        return "en_US", template, {"v": ("EMAIL", raw, email)}

    def email_obfuscated(self):
        f = self.f[self.rng.choice(["en_US", "de_DE", "fr_FR"])]
        user, domain = f.user_name(), f.free_email_domain()
        host, tld = domain.rsplit(".", 1)
        raw = self.rng.choice([
            f"{user} [at] {host} [dot] {tld}", f"{user}(at){host}(dot){tld}",
            f"{user} at {host} dot {tld}", f"{user} AT {host} DOT {tld}",
            f"{user} {{at}} {host} {{dot}} {tld}", f"{user}[@]{host}[.]{tld}"])
        return "en_US", self.rng.choice(["mail me: {v}", "write to {v} please",
                                         "my address is {v}"]), \
            {"v": ("EMAIL", raw, f"{user}@{domain}")}

    def invisible_chars(self):
        kind = self.rng.choice(["EMAIL", "PHONE", "CREDIT_CARD"])
        plain = {"EMAIL": self.f["en_US"].email(), "PHONE": "+44 20 7946 0958",
                 "CREDIT_CARD": self.f["en_US"].credit_card_number("visa16")}[kind]
        raw = _zero_width(plain, self.rng) if self.rng.random() < 0.6 else _fullwidth(plain)
        return "en_US", {"EMAIL": "mail {v}", "PHONE": "phone {v}",
                         "CREDIT_CARD": "card {v} was charged"}[kind], {"v": (kind, raw, plain)}

    def uk_address(self):
        f = self.f["en_GB"]
        street = f"{self.rng.randint(1, 250)} {f.street_name()}"
        value = self.rng.choice([f"{street}, {f.city()} {f.postcode()}",
                                 f"Flat {self.rng.randint(1, 40)}, {street}, {f.postcode()}"])
        if self.rng.random() < 0.3:
            value = value.lower()
        return "en_GB", self.rng.choice(["Send the book to {v}.", "I moved to {v} last month",
                                         "my address: {v}"]), \
            {"v": ("STREET_ADDRESS", value, value)}

    def phone_after_cjk(self):
        rng = self.rng
        locale, template, value = rng.choice([
            ("zh_CN", "我的手机号{v}，请回电", f"1{rng.choice('3589')}{rng.randint(10**8, 10**9 - 1)}"),
            ("zh_CN", "电话{v}", f"1{rng.choice('3589')}{rng.randint(10**8, 10**9 - 1)}"),
            ("zh_CN", "请打+86 {v}联系我",
             f"1{rng.choice('3589')}{rng.randint(10, 99)} {rng.randint(1000, 9999)} "
             f"{rng.randint(1000, 9999)}"),
            ("ja_JP", "電話番号は{v}です", f"090-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}"),
            ("ko_KR", "제 전화번호는{v}입니다", f"010-{rng.randint(1000, 9999)}-{rng.randint(1000, 9999)}")])
        return locale, template, {"v": ("PHONE", value, value)}

    def cjk_name(self):
        locale, template = self.rng.choice([
            ("zh_CN", "你好，我叫{n}，请问什么是强化学习？"), ("zh_CN", "姓名：{n}"),
            ("ja_JP", "私の名前は{n}です。"), ("ja_JP", "{n}さんに連絡してください。"),
            ("ko_KR", "제 이름은 {n}입니다."), ("ko_KR", "{n} 씨에게 전해 주세요.")])
        name = self.f[locale].name().replace(" ", "")
        return locale, template, {"n": ("PERSON", name, name)}

    def cyrillic_name(self):
        name = self._name("ru_RU")
        if self.rng.random() < 0.4:
            name = name.lower()
        return "ru_RU", self.rng.choice(["Здравствуйте, меня зовут {n}, как работает DQN?",
                                         "Моё имя {n}.", "С уважением, {n}"]), \
            {"n": ("PERSON", name, name)}

    def spelled_digits(self):
        lang = self.rng.choice(list(DIGITS))
        digits = self.rng.choice(["07700900" + str(self.rng.randint(100, 999)),
                                  "+4930" + str(self.rng.randint(1000000, 9999999)),
                                  "0612" + str(self.rng.randint(100000, 999999))])
        template = {"en": "call me on {v}", "de": "meine Nummer ist {v}",
                    "fr": "mon numéro est le {v}", "es": "mi teléfono es {v}"}[lang]
        return {"en": "en_GB", "de": "de_DE", "fr": "fr_FR", "es": "es_ES"}[lang], template, \
            {"v": ("PHONE", _spell(digits, lang, self.rng), digits)}

    def lowercase_place(self):
        place = self.rng.choice(sorted(set(self.lex["places"]) - set(self.lex["ambiguous_places"])))
        locale, template = self.rng.choice([
            ("en_US", "i live in {p} and the videos buffer a lot"),
            ("de_DE", "ich wohne in {p}, gibt es den kurs auf deutsch?"),
            ("es_ES", "vivo en {p}, ¿hay descuento?"), ("en_GB", "i'm based in {p} now")])
        return locale, template, {"p": ("LOCATION", place.lower(), place.lower())}


def _render(template: str, slots: dict) -> tuple[str, list[dict]]:
    text, entities, pos = "", [], 0
    for match in re.finditer(r"\{(\w)\}", template):
        text += template[pos:match.start()]
        kind, raw, plain = slots[match.group(1)]
        entities.append({"turn": 0, "type": kind, "start": len(text),
                         "end": len(text) + len(raw), "value": plain})
        text += raw
        pos = match.end()
    return text + template[pos:], entities


def _split_row(rng: random.Random, fakers: dict[str, Faker]) -> dict:
    """A card, email or IBAN typed over two turns."""
    kind = rng.choice(["CREDIT_CARD", "EMAIL", "IBAN"])
    value = {"CREDIT_CARD": fakers["en_US"].credit_card_number("visa16"),
             "EMAIL": fakers["en_US"].email(), "IBAN": fakers["de_DE"].iban()}[kind]
    if kind == "CREDIT_CARD" and rng.random() < 0.5:
        value = " ".join(value[i:i + 4] for i in range(0, 16, 4))
    cut = value.index("@") + 1 if kind == "EMAIL" else (len(value) // 2 if " " not in value
                                                         else value.index(" ", 6))
    first, second = value[:cut].rstrip(), value[cut:].lstrip()
    turns = [f"my {kind.lower().replace('_', ' ')} is {first}", f"{second} (sorry, cut off)"]
    start0 = len(turns[0]) - len(first)
    return {"family": "split_turns", "locale": "en_US", "turns": turns, "entities": [
        {"turn": 0, "type": kind, "start": start0, "end": len(turns[0]), "value": value},
        {"turn": 1, "type": kind, "start": 0, "end": len(second), "value": value}]}


def build_corpus(seed: int = SEED, per_family: int = PER_FAMILY) -> list[dict]:
    """`per_family` rows of every family, in family order."""
    rng = random.Random(seed)
    locales = ["en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "it_IT", "pt_BR", "nl_NL", "pl_PL",
               "ru_RU", "zh_CN", "ja_JP", "ko_KR"]
    fakers = {loc: Faker(loc) for loc in locales}
    for i, loc in enumerate(locales):
        fakers[loc].seed_instance(seed * 100 + i)
    families = Families(rng, fakers, json.loads(LEXICON.read_text("utf-8")))
    names = [n for n in vars(Families) if not n.startswith("_")]
    rows = []
    for name in names:
        for _ in range(per_family):
            locale, template, slots = getattr(families, name)()
            text, entities = _render(template, slots)
            rows.append({"family": name, "locale": locale, "turns": [text],
                         "entities": entities})
    rows += [_split_row(rng, fakers) for _ in range(per_family)]
    return rows


def main() -> None:
    """Write the corpus next to this script."""
    logging.basicConfig(level=logging.INFO)
    rows = build_corpus()
    with OUT.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    log.info("wrote %d rows in %d families to %s", len(rows),
             len({r["family"] for r in rows}), OUT)


if __name__ == "__main__":
    main()
