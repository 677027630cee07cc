"""Local backend: render the manifest as a LaunchDarkly flag file and write it safely.

The file is what the SDK's file data source reads (`{"flags": {...}, "segments": {...}}`), with
full flag JSON. Output is deterministic (sorted keys, ids and salts derived from keys, versions
bumped only when an item changes), so a second run leaves the file byte-identical.
"""

from __future__ import annotations

import difflib
import json
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bootstrap.graph_manifest import GraphSpec, graph_value
from bootstrap.manifest import Manifest, SegmentSpec, VariationSpec, variation_value
from bootstrap.state import (
    BootstrapState,
    dump_state,
    load_state,
    local_state_path,
    write_text_atomic,
)
from utils.flags.flag_file import ALL_WEIGHT, EXPERIMENT_ROLLOUT

log = logging.getLogger(__name__)

# Fixed namespace: rule ids and salts are uuid5(namespace, "<flag>/<purpose>/<key>").
_NAMESPACE = uuid.UUID("6b1f8f5e-3c1e-4c55-9a43-2f0d9d6c7a10")


class FlagFileError(RuntimeError):
    """The flag file cannot be read, rendered, validated or written."""


def stable_id(*parts: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, "/".join(parts)))


@dataclass(frozen=True)
class ExperimentPlan:
    """An experiment as the flag file carries it: a rollout, or the promoted winner."""

    key: str
    name: str
    config: str
    audience: str
    split: tuple[tuple[str, float], ...]
    seed: int
    winner: str | None = None  # set once promoted
    archived: tuple[str, ...] = ()  # the losing arms nothing serves any more
    promote_to: str = "audience"  # "everyone": once promoted, the winner is the fallthrough

    @property
    def arms(self) -> list[str]:
        return [arm for arm, _ in self.split]


def experiment_plans(experiments: list[Any], state: BootstrapState) -> list[ExperimentPlan]:
    """The experiments the state says are running or promoted, in experiments.yaml order."""
    plans = []
    for exp in experiments:
        entry = state.experiments.get(exp.key)
        if entry is None:
            continue
        plans.append(ExperimentPlan(
            key=exp.key, name=exp.name, config=exp.config, audience=exp.audience,
            split=tuple(exp.split.items()), seed=exp.seed,
            winner=entry.winner if entry.status == "promoted" else None,
            archived=tuple(entry.archived), promote_to=exp.promote_to))
    return plans


def fallthrough(config_key: str, plans: list[ExperimentPlan], index: dict[str, int],
                default: int) -> int:
    """The default variation, unless an experiment on `config_key` promoted to everyone."""
    for plan in plans:
        if plan.config == config_key and plan.winner is not None \
                and plan.promote_to == "everyone":
            return index[plan.winner]
    return default


def _weights(split: tuple[tuple[str, float], ...]) -> list[int]:
    """Percentages as integer weights summing to exactly 100000 (the last arm absorbs rounding)."""
    weights = [round(percent * 1000) for _, percent in split]
    weights[-1] = ALL_WEIGHT - sum(weights[:-1])
    return weights


def segment_match(segment: str) -> dict[str, Any]:
    return {"contextKind": "user", "attribute": "segmentMatch", "op": "segmentMatch",
            "values": [segment], "negate": False}


def render_segment(segment: SegmentSpec) -> dict[str, Any]:
    rules = [{"id": stable_id("segment", segment.key, str(i)),
              "clauses": [{"contextKind": "user", "attribute": c.attribute, "op": c.op,
                           "values": list(c.values), "negate": c.negate} for c in rule.clauses]}
             for i, rule in enumerate(segment.rules)]
    return {"key": segment.key, "included": [], "excluded": [], "includedContexts": [],
            "excludedContexts": [], "rules": rules, "salt": stable_id("salt", segment.key),
            "deleted": False}


def flag_variations(manifest: Manifest, config_key: str,
                    plans: list[ExperimentPlan]) -> list[VariationSpec]:
    """A config's variations; experiment variations are appended once an experiment uses them."""
    variations = list(manifest.config(config_key).variations)
    if any(p.config == config_key for p in plans):
        variations += manifest.experiment_variations_for(config_key)
    return variations


def serving_order(plans: list[ExperimentPlan]) -> list[ExperimentPlan]:
    """Running experiments before promoted ones, else in experiments.yaml order: a new
    experiment on the audience of an earlier, promoted one (the next round of the loop, from
    its winner) is what that audience is served."""
    return sorted(plans, key=lambda p: p.winner is not None)


def experiment_rules(config_key: str, plans: list[ExperimentPlan],
                     index: dict[str, int]) -> list[dict[str, Any]]:
    """The rules of the experiments on `config_key`, in `serving_order`: a rollout while
    running, the winner once promoted."""
    rules: list[dict[str, Any]] = []
    for plan in serving_order([p for p in plans if p.config == config_key]):
        rule: dict[str, Any] = {"id": stable_id(config_key, "experiment", plan.key),
                                "clauses": [segment_match(plan.audience)]}
        if plan.winner is None:
            rule["description"] = f"Experiment {plan.name}: {' vs '.join(plan.arms)}"
            rule["trackEvents"] = True
            rule["rollout"] = {
                "kind": EXPERIMENT_ROLLOUT, "seed": plan.seed, "contextKind": "user",
                "variations": [{"variation": index[arm], "weight": w, "untracked": False}
                               for arm, w in zip(plan.arms, _weights(plan.split), strict=True)]}
        else:
            rule["description"] = (f"Experiment {plan.name} promoted: {plan.winner} "
                                   f"(archived: {', '.join(plan.archived) or 'none'})")
            rule["trackEvents"] = False
            rule["variation"] = index[plan.winner]
        rules.append(rule)
    return rules


def render_flag(manifest: Manifest, config_key: str, plans: list[ExperimentPlan],
                previous: dict[str, Any] | None) -> dict[str, Any]:
    """One AI config as full flag JSON; experiment rules come before the segment rules."""
    config = manifest.config(config_key)
    variations = flag_variations(manifest, config_key, plans)
    index = {v.key: i for i, v in enumerate(variations)}
    old_values = {v.get("_ldMeta", {}).get("variationKey"): v
                  for v in (previous or {}).get("variations", []) if isinstance(v, dict)}
    values = [_versioned_value(variation_value(v, manifest), old_values.get(v.key))
              for v in variations]
    rules = experiment_rules(config_key, plans, index)
    for target in config.targeting.rules:
        rules.append({"id": stable_id(config_key, "segment", target.segment),
                      "description": f"{target.segment} -> {target.variation}",
                      "clauses": [segment_match(target.segment)],
                      "variation": index[target.variation], "trackEvents": False})
    default = index[config.targeting.default]
    flag = {"key": config_key, "on": True, "variations": values, "offVariation": default,
            "fallthrough": {"variation": fallthrough(config_key, plans, index, default)},
            "rules": rules, "targets": [],
            "contextTargets": [], "prerequisites": [], "salt": stable_id("salt", config_key),
            "trackEvents": False, "trackEventsFallthrough": False, "deleted": False}
    return _versioned(flag, previous)


def render_graph_flag(graph: GraphSpec, plans: list[ExperimentPlan],
                      previous: dict[str, Any] | None) -> dict[str, Any]:
    """An Agent Graph config as full flag JSON, its variation values in the shape `ldai` reads."""
    old_values = {v.get("_ldMeta", {}).get("variationKey"): v
                  for v in (previous or {}).get("variations", []) if isinstance(v, dict)}
    values = [_versioned_value(graph_value(graph, v), old_values.get(v.key))
              for v in graph.variations]
    index = {v.key: i for i, v in enumerate(graph.variations)}
    default = index[graph.targeting.default]
    flag = {"key": graph.key, "on": True, "variations": values, "offVariation": default,
            "fallthrough": {"variation": fallthrough(graph.key, plans, index, default)},
            "rules": experiment_rules(graph.key, plans, index), "targets": [],
            "contextTargets": [], "prerequisites": [], "salt": stable_id("salt", graph.key),
            "trackEvents": False, "trackEventsFallthrough": False, "deleted": False}
    return _versioned(flag, previous)


def _versioned(item: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Keep the previous version if nothing else changed, otherwise bump it."""
    if previous is None:
        return {**item, "version": 1}
    old_version = int(previous.get("version", 0))
    same = {k: v for k, v in previous.items() if k != "version"} == item
    return {**item, "version": old_version if same else old_version + 1}


def _versioned_value(value: dict[str, Any], previous: dict[str, Any] | None) -> dict[str, Any]:
    """Same rule for a variation value, whose version lives in `_ldMeta.version`."""
    if previous is None:
        return value
    old_version = int(previous.get("_ldMeta", {}).get("version", 1))
    strip = lambda v: {**v, "_ldMeta": {**v.get("_ldMeta", {}), "version": None}}  # noqa: E731
    version = old_version if strip(previous) == strip(value) else old_version + 1
    return {**value, "_ldMeta": {**value["_ldMeta"], "version": version}}


def render_document(manifest: Manifest, plans: list[ExperimentPlan],
                    previous: dict[str, Any] | None) -> dict[str, Any]:
    """The whole flag file. Flags and segments the manifest does not define are kept as they are."""
    previous = previous or {}
    old_flags, old_segments = previous.get("flags", {}), previous.get("segments", {})
    defined = {c.key for c in manifest.configs} | {g.key for g in manifest.graphs}
    flags = {k: v for k, v in old_flags.items() if k not in defined}
    segments = {k: v for k, v in old_segments.items()
                if k not in {s.key for s in manifest.segments}}
    for key in sorted(flags) + sorted(segments):
        log.warning("keeping %r from the existing flag file: the manifest does not define it", key)
    for config in manifest.configs:
        flags[config.key] = render_flag(manifest, config.key, plans, old_flags.get(config.key))
    for graph in manifest.graphs:
        flags[graph.key] = render_graph_flag(graph, plans, old_flags.get(graph.key))
    for segment in manifest.segments:
        segments[segment.key] = _versioned(render_segment(segment), old_segments.get(segment.key))
    return {"flags": flags, "segments": segments}


def dump_document(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def read_document(path: Path) -> tuple[str, dict[str, Any] | None]:
    """The current text and parsed content of the flag file ("" and None when absent)."""
    if not path.exists():
        return "", None
    try:
        text = path.read_text(encoding="utf-8")
        document = json.loads(text)
    except (OSError, ValueError) as err:
        raise FlagFileError(f"{path}: cannot read the existing flag file ({err}); fix it or "
                            "delete it and run `python -m bootstrap.create_configs` again") from None
    if not isinstance(document, dict) or not isinstance(document.get("flags", {}), dict):
        raise FlagFileError(f"{path}: expected a JSON object with a `flags` mapping; delete the "
                            "file and run `python -m bootstrap.create_configs` again")
    return text, document


def summarize_changes(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """One readable line per flag or segment that is added, removed or changed."""
    old = old or {}
    lines = []
    for kind in ("flags", "segments"):
        before, after = old.get(kind, {}), new.get(kind, {})
        for key in sorted(set(before) | set(after)):
            if key not in before:
                lines.append(f"+ {kind[:-1]} {key}: created")
            elif key not in after:
                lines.append(f"- {kind[:-1]} {key}: removed")
            elif before[key] != after[key]:
                lines.append(f"~ {kind[:-1]} {key}: {_describe_flag_change(before[key], after[key])}")
    return lines


def _describe_flag_change(before: dict[str, Any], after: dict[str, Any]) -> str:
    parts = []
    keys = lambda f: {v.get("_ldMeta", {}).get("variationKey"): v  # noqa: E731
                      for v in f.get("variations", []) if isinstance(v, dict)}
    vb, va = keys(before), keys(after)
    if added := [k for k in va if k not in vb]:
        parts.append(f"variations added {added}")
    if changed := [k for k in va if k in vb and vb[k] != va[k]]:
        parts.append(f"variations changed {changed}")
    rb = {r.get("id"): r for r in before.get("rules", [])}
    ra = {r.get("id"): r for r in after.get("rules", [])}
    for rid, rule in ra.items():
        if rid not in rb:
            parts.append(f"rule added ({rule.get('description', rid)})")
        elif rb[rid] != rule:
            parts.append(f"rule changed ({rule.get('description', rid)})")
    parts.extend(f"rule removed ({r.get('description', rid)})" for rid, r in rb.items()
                 if rid not in ra)
    if before.get("fallthrough") != after.get("fallthrough"):
        parts.append("default variation changed")
    return "; ".join(parts) or "updated"


def unified_diff(old_text: str, new_text: str, path: Path) -> str:
    return "".join(difflib.unified_diff(
        old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
        fromfile=f"{path} (current)", tofile=f"{path} (new)", n=3))


def sync_flag_file(path: Path, manifest: Manifest, experiments: list[Any],
                   state: BootstrapState, *, dry_run: bool = False,
                   out=print) -> bool:
    """Render, validate with the real SDK and atomically write the flag file and its state.

    Returns True when something changed (or would change, with `dry_run`).
    """
    state_path = local_state_path(path)
    old_text, old_doc = read_document(path)
    plans = experiment_plans(experiments, state)
    new_doc = render_document(manifest, plans, old_doc)
    new_text = dump_document(new_doc)
    state_changed = (state_path.read_text(encoding="utf-8") if state_path.exists()
                     else dump_state(BootstrapState())) != dump_state(state)
    if new_text == old_text and not state_changed:
        out(f"no changes: {path} is up to date")
        return False
    for line in summarize_changes(old_doc, new_doc):
        out(line)
    if dry_run:
        diff = unified_diff(old_text, new_text, path)
        out(diff if diff else f"(flag file unchanged; the state in {state_path} would change)")
        out("dry run: nothing written")
        return True
    if new_text != old_text:
        tmp = path.with_name(f".{path.name}.candidate")
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            tmp.write_text(new_text, encoding="utf-8")
            validate_flag_file(tmp, manifest, plans)
        finally:
            tmp.unlink(missing_ok=True)
        write_text_atomic(path, new_text)
        out(f"wrote {path}")
    if state_changed:
        write_text_atomic(state_path, dump_state(state))
        out(f"wrote {state_path}")
    return True


def current_state(path: Path) -> BootstrapState:
    return load_state(local_state_path(path))


# --- validation with the real SDK ------------------------------------------------------------

def _probes(manifest: Manifest, config_key: str, plans: list[ExperimentPlan]):
    """(context attributes, allowed variation keys, expect inExperiment) per segment and default."""
    config = manifest.config(config_key)
    by_segment = {r.segment: r.variation for r in config.targeting.rules}
    yield {}, {config.targeting.default}, False
    for segment in manifest.segments:
        attrs: dict[str, Any] = {}
        for clause in segment.rules[0].clauses:
            if clause.op != "in":
                continue
            if clause.negate:  # a value outside the list: "US" is in none of our lists
                attrs[clause.attribute] = "US"
            else:
                attrs[clause.attribute] = clause.values[0]
        plan = next(iter(serving_order([p for p in plans if p.config == config_key
                                        and p.audience == segment.key])), None)
        if plan is not None and plan.winner is None:
            yield attrs, set(plan.arms), True
        elif plan is not None:
            yield attrs, {plan.winner}, False
        else:
            yield attrs, {by_segment.get(segment.key, config.targeting.default)}, False


def validate_flag_file(path: Path, manifest: Manifest, plans: list[ExperimentPlan]) -> None:
    """Load the file into the real LaunchDarkly SDK and check what it serves to each segment."""
    from ldclient import Context, LDClient
    from ldclient.config import Config
    from ldclient.integrations import Files

    config = Config("bootstrap-validate", send_events=False, diagnostic_opt_out=True,
                    update_processor_class=Files.new_data_source(paths=[str(path)]))
    client = LDClient(config=config, start_wait=5)
    problems: list[str] = []
    try:
        if not client.is_initialized():
            raise FlagFileError(f"{path}: the LaunchDarkly SDK could not load the generated file")
        for spec in manifest.configs:
            for n, (attrs, allowed, in_experiment) in enumerate(_probes(manifest, spec.key, plans)):
                builder = Context.builder(f"bootstrap-probe-{n}")
                for name, value in attrs.items():
                    builder.set(name, value)
                detail = client.variation_detail(spec.key, builder.build(), None)
                value = detail.value if isinstance(detail.value, dict) else {}
                served = value.get("_ldMeta", {}).get("variationKey")
                got_in_experiment = bool(detail.reason.get("inExperiment", False))
                if served not in allowed or got_in_experiment != in_experiment:
                    problems.append(f"{spec.key} for {attrs or 'a user with no attributes'}: "
                                    f"served {served!r} (reason {detail.reason}), expected one "
                                    f"of {sorted(allowed)} with inExperiment={in_experiment}")
    finally:
        client.close()
    if problems:
        raise FlagFileError("the generated flag file does not evaluate as intended; nothing was "
                            "written:\n  - " + "\n  - ".join(problems))
