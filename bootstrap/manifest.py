"""The bootstrap manifest: load and validate `bootstrap/manifest.yaml` (docs/CONTRACTS.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from bootstrap.graph_manifest import GraphSpec, graph_errors
from utils.providers import MODEL_PROVIDERS, PROVIDER_NAMES
from utils.strict_yaml import read_yaml, validate

DEFAULT_PATH = Path(__file__).with_name("manifest.yaml")


KEY_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"


def _known_provider(name: str) -> str:
    if name not in PROVIDER_NAMES:
        raise ValueError(f"unknown provider {name!r}; expected one of "
                         f"{', '.join(repr(p) for p in PROVIDER_NAMES)}")
    return name


Provider = Annotated[str, AfterValidator(_known_provider)]


class ManifestError(ValueError):
    """The manifest is unreadable, malformed, or refers to something it does not define."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ToolSpec(_Strict):
    """A function tool: name, description for the model, and a JSON schema of its arguments."""

    name: str = Field(pattern=KEY_PATTERN)
    description: str = Field(min_length=10)
    parameters: dict[str, Any]

    @model_validator(mode="after")
    def _object_schema(self) -> ToolSpec:
        if self.parameters.get("type") != "object" or not isinstance(
            self.parameters.get("properties"), dict
        ):
            raise ValueError("parameters must be a JSON schema with type: object and properties")
        return self

    def as_function(self) -> dict[str, Any]:
        """The tool as it appears under `model.parameters.tools` of a variation."""
        return {"name": self.name, "type": "function", "description": self.description,
                "parameters": self.parameters}


class ModelParameters(_Strict):
    temperature: float = Field(ge=0.0, le=2.0)
    max_tokens: int = Field(gt=0, le=32000)


class CustomParameters(_Strict):
    """Custom parameters that travel with a variation (CONTRACTS: AI Config variation values)."""

    max_tool_calls: int = Field(ge=0, le=50)
    pii_policy: Literal["basic", "strict"]
    max_cost_per_session: float = Field(gt=0.0)
    privacy_mode: bool


class VariationSpec(_Strict):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1)
    model: str
    provider: Provider
    parameters: ModelParameters
    custom: CustomParameters
    tools: list[str] = []
    instructions: str = Field(min_length=1)
    enabled: bool = True

    @model_validator(mode="after")
    def _known_model(self) -> VariationSpec:
        _check_model(self.model, self.provider)
        return self


def _check_model(model: str, provider: str) -> None:
    if model not in MODEL_PROVIDERS:
        raise ValueError(f"unknown model {model!r}; expected one of {sorted(MODEL_PROVIDERS)}")
    if MODEL_PROVIDERS[model] != provider:
        raise ValueError(
            f"model {model!r} is served by provider {MODEL_PROVIDERS[model]!r}, not {provider!r}"
        )


class ClauseSpec(_Strict):
    attribute: str = Field(min_length=1)
    op: Literal["in", "startsWith", "endsWith", "contains", "matches"]
    values: list[str | int | float | bool] = Field(min_length=1)
    negate: bool = False


class SegmentRuleSpec(_Strict):
    clauses: list[ClauseSpec] = Field(min_length=1)


class SegmentSpec(_Strict):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1)
    description: str = ""
    rules: list[SegmentRuleSpec] = Field(min_length=1)


class TargetingRuleSpec(_Strict):
    segment: str
    variation: str


class TargetingSpec(_Strict):
    rules: list[TargetingRuleSpec] = []
    default: str


class ConfigSpec(_Strict):
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1)
    description: str = ""
    mode: Literal["agent"] = "agent"
    variations: list[VariationSpec] = Field(min_length=1)
    targeting: TargetingSpec

    def variation(self, key: str) -> VariationSpec | None:
        return next((v for v in self.variations if v.key == key), None)


class ExperimentVariationSpec(_Strict):
    """A variation added for an experiment: a copy of `based_on` with the given overrides."""

    config: str
    based_on: str
    key: str = Field(pattern=KEY_PATTERN)
    name: str = Field(min_length=1)
    model: str | None = None
    provider: Provider | None = None
    parameters: ModelParameters | None = None
    custom: CustomParameters | None = None
    tools: list[str] | None = None
    instructions: str | None = None


class Manifest(_Strict):
    version: Literal[1]
    tools: list[ToolSpec] = Field(min_length=1)
    segments: list[SegmentSpec] = Field(min_length=1)
    configs: list[ConfigSpec] = Field(min_length=1)
    experiment_variations: list[ExperimentVariationSpec] = []
    graphs: list[GraphSpec] = []

    def graph(self, key: str) -> GraphSpec:
        """The agent graph with this key; `KeyError` naming the known keys otherwise."""
        for graph in self.graphs:
            if graph.key == key:
                return graph
        raise KeyError(f"unknown agent graph {key!r}; known: {[g.key for g in self.graphs]}")

    def config(self, key: str) -> ConfigSpec:
        """The config with this key; `KeyError` naming the known keys otherwise."""
        for config in self.configs:
            if config.key == key:
                return config
        raise KeyError(f"unknown AI config {key!r}; known: {[c.key for c in self.configs]}")

    def tool(self, name: str) -> ToolSpec:
        return next(t for t in self.tools if t.name == name)

    def segment(self, key: str) -> SegmentSpec:
        """The segment with this key; `KeyError` naming the known keys otherwise."""
        for segment in self.segments:
            if segment.key == key:
                return segment
        raise KeyError(f"unknown segment {key!r}; known: {[s.key for s in self.segments]}")

    def segment_clause(self, key: str, attribute: str) -> ClauseSpec | None:
        """The first clause of segment `key` on `attribute` (e.g. its country list), if any."""
        for rule in self.segment(key).rules:
            for clause in rule.clauses:
                if clause.attribute == attribute:
                    return clause
        return None

    def experiment_variations_for_all(self) -> list[VariationSpec]:
        """Every experiment variation, resolved."""
        return [resolve_experiment_variation(self, ev) for ev in self.experiment_variations]

    def experiment_variations_for(self, config_key: str) -> list[VariationSpec]:
        """The experiment variations of one config, resolved against their `based_on`."""
        return [resolve_experiment_variation(self, ev) for ev in self.experiment_variations
                if ev.config == config_key]


def resolve_experiment_variation(manifest: Manifest, ev: ExperimentVariationSpec) -> VariationSpec:
    """Copy `ev.based_on` and apply the fields `ev` sets."""
    base = manifest.config(ev.config).variation(ev.based_on)
    assert base is not None  # checked by _reference_errors
    overrides = ev.model_dump(exclude={"config", "based_on"}, exclude_none=True)
    return VariationSpec.model_validate({**base.model_dump(), **overrides})


def variation_value(variation: VariationSpec, manifest: Manifest, version: int = 1) -> dict:
    """The variation as LaunchDarkly serves it (CONTRACTS: AI Config variation values)."""
    parameters: dict[str, Any] = variation.parameters.model_dump()
    if variation.tools:
        parameters["tools"] = [manifest.tool(name).as_function() for name in variation.tools]
    return {
        "_ldMeta": {"enabled": variation.enabled, "variationKey": variation.key,
                    "version": version, "mode": "agent"},
        "model": {"name": variation.model, "parameters": parameters,
                  "custom": variation.custom.model_dump()},
        "provider": {"name": variation.provider},
        "instructions": variation.instructions,
    }


# --- loading and error reporting -------------------------------------------------------------

def _duplicates(keys: list[str]) -> list[str]:
    return sorted({k for k in keys if keys.count(k) > 1})


def _reference_errors(m: Manifest) -> list[str]:
    """Cross-references pydantic cannot see: tools, segments and variations named elsewhere."""
    errors: list[str] = []
    tools = {t.name for t in m.tools}
    segments = {s.key for s in m.segments}
    for what, keys in (("tools", [t.name for t in m.tools]),
                       ("segments", [s.key for s in m.segments]),
                       ("configs", [c.key for c in m.configs])):
        if dupes := _duplicates(keys):
            errors.append(f"{what}: keys must be unique; repeated: {dupes}")
    for ci, config in enumerate(m.configs):
        where = f"configs[{ci}]({config.key})"
        keys = [v.key for v in config.variations]
        if dupes := _duplicates(keys):
            errors.append(f"{where}.variations: keys must be unique; repeated: {dupes}")
        for vi, variation in enumerate(config.variations):
            for name in variation.tools:
                if name not in tools:
                    errors.append(f"{where}.variations[{vi}]({variation.key}).tools: unknown "
                                  f"tool {name!r}; expected one of {sorted(tools)}")
        for ri, rule in enumerate(config.targeting.rules):
            if rule.segment not in segments:
                errors.append(f"{where}.targeting.rules[{ri}].segment: unknown segment "
                              f"{rule.segment!r}; expected one of {sorted(segments)}")
            if rule.variation not in keys:
                errors.append(f"{where}.targeting.rules[{ri}].variation: {rule.variation!r} is "
                              f"not a variation of {config.key}; expected one of {keys}")
        if dupes := _duplicates([r.segment for r in config.targeting.rules]):
            errors.append(f"{where}.targeting.rules: one rule per segment; repeated: {dupes}")
        if config.targeting.default not in keys:
            errors.append(f"{where}.targeting.default: {config.targeting.default!r} is not a "
                          f"variation of {config.key}; expected one of {keys}")
    configs = {c.key: c for c in m.configs}
    for ei, ev in enumerate(m.experiment_variations):
        where = f"experiment_variations[{ei}]({ev.key})"
        config = configs.get(ev.config)
        if config is None:
            errors.append(f"{where}.config: unknown config {ev.config!r}; "
                          f"expected one of {sorted(configs)}")
            continue
        if config.variation(ev.based_on) is None:
            errors.append(f"{where}.based_on: {ev.based_on!r} is not a variation of {ev.config}; "
                          f"expected one of {[v.key for v in config.variations]}")
            continue
        if config.variation(ev.key) is not None:
            errors.append(f"{where}.key: {ev.key!r} is already a variation of {ev.config}")
        for name in ev.tools or []:
            if name not in tools:
                errors.append(f"{where}.tools: unknown tool {name!r}; expected one of "
                              f"{sorted(tools)}")
        try:
            resolve_experiment_variation(m, ev)
        except ValidationError as err:
            errors.extend(f"{where}: {e['msg'].removeprefix('Value error, ')}"
                          for e in err.errors())
    errors += graph_errors(m.graphs, set(configs))
    return errors


def parse_manifest(data: Any, path: Path | str = "<memory>") -> Manifest:
    """Validate parsed YAML; `ManifestError` names the file, the key path and the expectation."""
    path = Path(path)
    if not isinstance(data, dict):
        raise ManifestError(f"{path}: expected a mapping at the top level, got "
                            f"{type(data).__name__}")
    # `x-*` keys only hold YAML anchors.
    data = {k: v for k, v in data.items() if not str(k).startswith("x-")}
    manifest = validate(Manifest, data, path, ManifestError, "manifest")
    errors = _reference_errors(manifest)
    if errors:
        raise ManifestError("\n".join([f"{path}: {len(errors)} problem(s) in the manifest:"]
                                      + [f"  - {e}" for e in errors]))
    return manifest


def load_manifest(path: Path | str = DEFAULT_PATH) -> Manifest:
    """Load and validate the manifest file; raise `ManifestError` saying what is wrong and where."""
    path = Path(path)
    return parse_manifest(read_yaml(path, ManifestError, "manifest"), path)


def experiment_errors(manifest: Manifest, experiments: list[Any]) -> list[str]:
    """Experiments that name a config, audience segment or arm the manifest does not define."""
    errors: list[str] = []
    segments = {s.key for s in manifest.segments}
    configs: dict[str, Any] = {c.key: c for c in manifest.configs}
    configs.update({g.key: g for g in manifest.graphs})  # a graph's topology is a variable too
    for exp in experiments:
        where = f"experiments.yaml: {exp.key}"
        config = configs.get(exp.config)
        if config is None:
            errors.append(f"{where}.config: unknown AI config or agent graph {exp.config!r}; "
                          f"expected one of {sorted(configs)}")
            continue
        if exp.audience not in segments:
            errors.append(f"{where}.audience: unknown segment {exp.audience!r}; expected one of "
                          f"{sorted(segments)}")
        known = [v.key for v in config.variations] + [
            ev.key for ev in manifest.experiment_variations if ev.config == exp.config]
        for arm in exp.split:
            if arm not in known:
                errors.append(f"{where}.split: {arm!r} is not a variation of {exp.config}; "
                              f"expected one of {known}")
    return errors


GRAPH_EXPERIMENTS_LOCAL_ONLY = (
    "LaunchDarkly's agent-graph resource holds one root and edge set, without variations, so "
    "a topology experiment cannot be a LaunchDarkly experiment; it runs on the local flag file")


def graph_promotion_by_hand(manifest: Manifest, exp: Any, variation: str) -> str:
    """Why `promote` cannot serve a graph variation on LaunchDarkly, and what to do instead.

    LaunchDarkly's REST API has no graph variations and no graph targeting: an agent graph
    (`/api/v2/projects/{project}/agent-graphs/{key}`) is one root and one edge set per
    project, for every environment, and the targeting endpoints are for AI Configs only. The
    one lever is that edge set, which `create_configs` keeps equal to the manifest's default.
    """
    graph = manifest.graph(exp.config)
    chosen = graph.variation(variation)
    assert chosen is not None  # `find_arm` checked it is an arm, the manifest that arms exist
    edges = "; ".join(f"{e.source} -> {e.target} (handoff {{\"when\": \"{e.when}\"}})"
                      for e in chosen.edges)
    return (f"cannot promote {exp.key} on LaunchDarkly: {GRAPH_EXPERIMENTS_LOCAL_ONLY}. "
            f"LaunchDarkly has no graph variation to serve, and no targeting for agent graphs; "
            f"an agent graph is one topology for every environment of the project. To run "
            f"{variation!r} for everyone there, set `targeting: default: {variation}` of graph "
            f"{graph.key} in bootstrap/manifest.yaml and run python -m bootstrap.create_configs "
            f"--backend launchdarkly (it replaces the graph's root and edges), or edit agent "
            f"graph {graph.key} in LaunchDarkly by hand: root {graph.root}, edges {edges} -- "
            f"then create_configs would put back the manifest's default until it is changed "
            f"too. Locally: python -m bootstrap.promote {exp.key} {variation} --backend local")


def on_graph(manifest: Manifest, exp: Any) -> bool:
    """Whether the experiment's arms are variations of an agent graph, not of an AI config."""
    return exp.config in {g.key for g in manifest.graphs}
