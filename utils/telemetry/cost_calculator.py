"""Dollar cost of a model call from its token usage, priced from `utils/telemetry/pricing.json`.

The table is read once per process (plus the optional user override file named by the
setting `PRICING_OVERRIDES_PATH`). An unknown model is *unpriced*: its cost is `None`
and a warning is logged once, so a missing price never turns into a silent $0.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

logger = logging.getLogger(__name__)

PRICING_PATH = Path(__file__).with_name("pricing.json")
TOKENS_PER_UNIT = 1_000_000  # prices are quoted per million tokens

_ENTRY_FIELDS = frozenset({"input", "output", "cached_input", "checked", "source", "notes"})


class PricingError(ValueError):
    """A pricing file is unreadable or has a bad entry (the message names file and key)."""


@dataclass(frozen=True)
class ModelPrice:
    """List price of one model family, USD per million tokens."""

    model: str
    input_per_mtok: float
    output_per_mtok: float
    cached_input_per_mtok: float | None = None  # None: cached tokens bill at the input price
    checked: str | None = None
    source: str | None = None
    notes: str | None = None


PricingTable = Mapping[str, ModelPrice]

# --- model-name normalisation -------------------------------------------------------------

_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$")  # ...-20251001-v1:0
_VERTEX_SNAPSHOT = re.compile(r"@\d{8}$")  # claude-sonnet-4-5@20250929
_COLON_PREFIX = re.compile(r"^[a-z_-]+:(?=.)")  # anthropic:claude-..., openai:gpt-4o
# Bedrock ids put an optional region, then the vendor, before the model: us.anthropic.claude-...
_DOTTED_VENDOR = re.compile(r"^(?:[a-z]+\.)?(?:anthropic|openai|mistral|meta|cohere|amazon)\.")
_SNAPSHOT_SUFFIXES = (
    re.compile(r"-\d{4}-\d{2}-\d{2}$"),  # OpenAI: gpt-4o-2024-08-06
    re.compile(r"-\d{8}$"),  # Anthropic: claude-haiku-4-5-20251001
    re.compile(r"-\d{4}$"),  # Mistral YYMM: mistral-small-2506 (also gpt-4-0613)
    re.compile(r"-latest$"),  # mistral-small-latest, claude-3-7-sonnet-latest
)
_CLAUDE_ZERO_ALIAS = re.compile(r"^(claude-(?:opus|sonnet|haiku)-\d+)-0$")  # claude-opus-4-0


def _clean_model_name(name: str) -> str:
    """Lower-case and strip provider wrappers, keeping the snapshot (e.g. `mistral-small-2506`)."""
    cleaned = name.strip().lower()
    if cleaned.startswith("ft:"):
        return cleaned  # fine-tuned models bill differently from their base; leave unpriced
    cleaned = _BEDROCK_VERSION.sub("", cleaned)
    cleaned = _VERTEX_SNAPSHOT.sub("", cleaned)
    cleaned = cleaned.rsplit("/", 1)[-1]  # openai/gpt-4o, bedrock/..., openrouter/anthropic/...
    cleaned = _COLON_PREFIX.sub("", cleaned)
    cleaned = _DOTTED_VENDOR.sub("", cleaned)
    if cleaned.startswith("claude"):
        cleaned = cleaned.replace(".", "-")  # OpenRouter spells claude-sonnet-4.5
    return cleaned


def normalize_model_name(name: str) -> str:
    """Reduce a model id to its family key: `bedrock/us.anthropic.claude-haiku-4-5-20251001-v1:0`
    and `anthropic:claude-haiku-4-5` both become `claude-haiku-4-5`; `mistral-small-latest`
    becomes `mistral-small`; `gpt-4o-2024-08-06` becomes `gpt-4o`."""
    family = _clean_model_name(name)
    if family.startswith("ft:"):
        return family
    previous = None
    while previous != family:  # a name may carry more than one suffix
        previous = family
        for suffix in _SNAPSHOT_SUFFIXES:
            family = suffix.sub("", family)
        family = _CLAUDE_ZERO_ALIAS.sub(r"\1", family)
    return family


@lru_cache(maxsize=4096)  # a handful of model ids, looked up several times per request
def model_lookup_keys(name: str) -> tuple[str, ...]:
    """Keys to try for a model, most specific first: the exact snapshot, then its family."""
    exact, family = _clean_model_name(name), normalize_model_name(name)
    return (exact,) if exact == family else (exact, family)


# --- loading ------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PricingError(f"pricing file {path} does not exist; fix the path or unset "
                           "PRICING_OVERRIDES_PATH") from exc
    except json.JSONDecodeError as exc:
        raise PricingError(f"pricing file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
        raise PricingError(f"pricing file {path} must be a JSON object with a 'models' object, "
                           'e.g. {"models": {"gpt-4o": {"input": 2.5, "output": 10}}}')
    return data


def _price_field(path: Path, key: str, field: str, value: Any, *, nullable: bool) -> float | None:
    if value is None and nullable:
        return None
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value < 0:
        raise PricingError(f"pricing file {path}: models.{key}.{field} must be a non-negative "
                           f"number (USD per 1M tokens), got {value!r}")
    return float(value)


def _parse_entry(path: Path, key: str, entry: Any, base: ModelPrice | None) -> ModelPrice:
    """Validate one entry; fields it omits are taken from `base` (the entry it overrides)."""
    if not isinstance(entry, dict):
        raise PricingError(f"pricing file {path}: models.{key} must be an object, got {entry!r}")
    unknown = set(entry) - _ENTRY_FIELDS
    if unknown:
        raise PricingError(f"pricing file {path}: models.{key} has unknown field(s) "
                           f"{sorted(unknown)}; allowed: {sorted(_ENTRY_FIELDS)}")
    for field in ("input", "output"):
        if field not in entry and base is None:
            raise PricingError(f"pricing file {path}: models.{key} is missing '{field}' "
                               "(USD per 1M tokens)")
    for field in ("checked", "source", "notes"):
        if entry.get(field) is not None and not isinstance(entry[field], str):
            raise PricingError(f"pricing file {path}: models.{key}.{field} must be a string")

    def price(field: str, attr: str, *, nullable: bool) -> float | None:
        value = entry[field] if field in entry else getattr(base, attr, None)
        return _price_field(path, key, field, value, nullable=nullable)

    def text(field: str) -> str | None:
        return entry[field] if field in entry else getattr(base, field, None)

    input_price = price("input", "input_per_mtok", nullable=False)
    output_price = price("output", "output_per_mtok", nullable=False)
    assert input_price is not None and output_price is not None  # nullable=False guarantees it
    return ModelPrice(
        model=key,
        input_per_mtok=input_price,
        output_per_mtok=output_price,
        cached_input_per_mtok=price("cached_input", "cached_input_per_mtok", nullable=True),
        checked=text("checked"),
        source=text("source"),
        notes=text("notes"),
    )


def load_pricing_table(path: Path = PRICING_PATH, overrides_path: Path | None = None,
                       ) -> PricingTable:
    """Read a pricing file and merge an override file over it, entry by entry and field by field.

    Keys are stored cleaned (lower case, provider prefix removed) so lookups can match them.
    """
    table: dict[str, ModelPrice] = {}
    for source_path in (path, overrides_path):
        if source_path is None:
            continue
        for raw_key, entry in _read_json(source_path)["models"].items():
            key = _clean_model_name(str(raw_key))
            table[key] = _parse_entry(source_path, key, entry, table.get(key))
    return MappingProxyType(table)


@lru_cache(maxsize=8)
def get_pricing_table(overrides_path: Path | None = None) -> PricingTable:
    """`pricing.json`, merged with an override file (setting PRICING_OVERRIDES_PATH) if given;
    read once per path."""
    return load_pricing_table(PRICING_PATH, overrides_path)


_warned_unpriced: set[str] = set()
_warned_lock = threading.Lock()


def reload_pricing() -> None:
    """Forget the cached table and the warned-about models (tests; after editing overrides)."""
    get_pricing_table.cache_clear()
    with _warned_lock:
        _warned_unpriced.clear()


def _warn_unpriced_once(model: str) -> None:
    family = normalize_model_name(model)
    with _warned_lock:
        if family in _warned_unpriced:
            return
        _warned_unpriced.add(family)
    logger.warning("model %r has no price in %s or PRICING_OVERRIDES_PATH; its cost is recorded "
                   "as unpriced (null). Add it to a pricing override file to price it.",
                   model, PRICING_PATH.name)


# --- public API ---------------------------------------------------------------------------


def get_price(model: str, table: PricingTable | None = None) -> ModelPrice | None:
    """The price of `model` (exact snapshot first, then its family), or None if unpriced."""
    prices = get_pricing_table() if table is None else table
    for key in model_lookup_keys(model):
        price = prices.get(key)
        if price is not None:
            return price
    return None


def calculate_cost(model: str, input_tokens: int, output_tokens: int,
                   cached_input_tokens: int = 0, *, table: PricingTable | None = None,
                   ) -> float | None:
    """Dollar cost of one call, or None for an unpriced model (warned about once).

    `input_tokens` is the whole prompt as providers and LangChain's `usage_metadata` report
    it, cache reads included; `cached_input_tokens` is the part of it served from cache.
    """
    for label, count in (("input_tokens", input_tokens), ("output_tokens", output_tokens),
                         ("cached_input_tokens", cached_input_tokens)):
        if count < 0:
            raise ValueError(f"{label} must be >= 0, got {count} (model {model!r})")
    if cached_input_tokens > input_tokens:
        raise ValueError(f"cached_input_tokens ({cached_input_tokens}) exceeds input_tokens "
                         f"({input_tokens}) for model {model!r}; pass the total prompt size "
                         "as input_tokens")
    price = get_price(model, table)
    if price is None:
        _warn_unpriced_once(model)
        return None
    cached_rate = price.input_per_mtok if price.cached_input_per_mtok is None \
        else price.cached_input_per_mtok
    dollars = ((input_tokens - cached_input_tokens) * price.input_per_mtok
               + cached_input_tokens * cached_rate
               + output_tokens * price.output_per_mtok) / TOKENS_PER_UNIT
    return round(dollars, 12)  # drop float noise like 0.0025000000000000005
