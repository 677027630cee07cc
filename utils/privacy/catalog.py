"""The recognizers the analyzer runs, each emitting the detector's entity type names."""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer, Pattern
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer

from utils.privacy.intl_recognizers import (
    PASSPORT_CUE,
    IbanRecognizer,
    TrimmedEmailRecognizer,
    address_recognizers,
    national_id_recognizers,
)
from utils.privacy.names import LowercasePlaceRecognizer, MultilingualNameRecognizer
from utils.privacy.recognizers import (
    CuedPatternRecognizer,
    IpAddressRecognizer,
    LocationRecognizer,
    PersonRecognizer,
    PhoneRecognizer,
    SsnRecognizer,
    address_recognizer,
    identifier_recognizers,
    job_title_recognizer,
    organization_recognizer,
)

_EDGE_L, _EDGE_R = r"(?<![\p{L}\p{N}])", r"(?![\p{L}\p{N}])"


def passport_recognizer() -> EntityRecognizer:
    """Passport numbers in any case after a passport cue word in one of a dozen languages."""
    return CuedPatternRecognizer(
        supported_entity="PASSPORT", name="PassportRecognizer",
        patterns=[
            Pattern("passport code", _EDGE_L + r"(?i:[A-Z]{0,2}\d{6,9}|(?=[A-Z]*\d)[A-Z0-9]{8,9})"
                    + _EDGE_R, 0.3),
            Pattern("series and number", _EDGE_L + r"\d{2}\s?\d{2}\s\d{6}" + _EDGE_R, 0.3)],
        cue=PASSPORT_CUE, window=40, cued_score=0.85, cue_only=True)


def credit_card_recognizer() -> EntityRecognizer:
    """Presidio's card patterns plus every ISO/IEC 7812 length; the Luhn check still applies."""
    return CreditCardRecognizer(supported_entity="CREDIT_CARD", patterns=[
        *CreditCardRecognizer.PATTERNS,
        Pattern("amex 4-6-5", r"\b3[47]\d{2}[- ]?\d{6}[- ]?\d{5}\b", 0.3),
        Pattern("mastercard 2-series", r"\b2[2-7]\d{2}(?:[- ]?\d{4}){3}\b", 0.3),
        # Maestro runs 12-19 digits and Visa up to 19, beyond Presidio's patterns.
        Pattern("any length 12-19", r"\b[1-9]\d{11,18}\b", 0.1),
        Pattern("19 digits grouped", r"\b\d{4}(?:[- ]\d{4}){3}[- ]\d{3}\b", 0.2)])


def build_recognizers() -> list[EntityRecognizer]:
    """All recognizers, in no particular order (the detector resolves overlaps)."""
    return [
        TrimmedEmailRecognizer(supported_entity="EMAIL"),
        credit_card_recognizer(),
        IbanRecognizer(),
        IpAddressRecognizer(supported_entity="IP_ADDRESS"),
        PhoneRecognizer(),
        SsnRecognizer(),
        passport_recognizer(),
        *national_id_recognizers(),
        *identifier_recognizers(),
        address_recognizer(),
        *address_recognizers(),
        organization_recognizer(),
        job_title_recognizer(),
        PersonRecognizer(),
        MultilingualNameRecognizer(),
        LocationRecognizer(),
        LowercasePlaceRecognizer(),
    ]
