"""Promote an offline variant: a new variation of its config and an online experiment for it.

    python -m tools.offline_experiment promote KEY NAME [--dry-run] [--backend local|launchdarkly]

The variant's effective configuration (its chain of overrides over the locked baseline) becomes
an entry of the manifest's `experiment_variations`, based on the variation the baseline was
served; an experiment comparing the two on the baseline's audience segment is appended to
experiments.yaml from bootstrap/promotion_template.yaml, then started (the local flag file's
experiment rollout, or the LaunchDarkly variation, metrics and iteration). `--dry-run` prints
both and writes nothing.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bootstrap.cli import EXPECTED_ERRORS, resolve_backend
from bootstrap.experiment_variations import describe_split
from bootstrap.launchdarkly_backend import LaunchDarklySync
from bootstrap.launchdarkly_client import LaunchDarklyClient
from bootstrap.launchdarkly_experiments import LaunchDarklyExperiments
from bootstrap.launchdarkly_verify import verify_served
from bootstrap.local_backend import current_state, sync_flag_file
from bootstrap.manifest import Manifest, ManifestError, experiment_errors, parse_manifest
from bootstrap.state import (
    ExperimentState,
    launchdarkly_state_path,
    load_state,
    write_text_atomic,
)
from utils.experiments.definitions import ExperimentConfigError, parse_experiments
from utils.experiments.offline_state import BASELINE, RuleBroken, effective_overrides
from utils.flags.overrides import split_model
from utils.settings import Settings

TEMPLATE_PATH = Path(__file__).resolve().parents[1] / "bootstrap" / "promotion_template.yaml"
FILLED_FIELDS = ("key", "name", "config", "audience", "control", "treatment", "split", "seed")
PROMOTE_ERRORS = EXPECTED_ERRORS  # reported as `error: ...`, exit 2, like the rules broken
UNREPRESENTABLE = ("top_p", "verbosity")  # the manifest's variations do not carry them


@dataclass(frozen=True)
class Promotion:
    variation: dict[str, Any]  # an `experiment_variations` entry
    experiment: dict[str, Any]  # an experiments.yaml entry
    manifest: Manifest  # with the variation added
    experiments: list[Any]  # with the experiment added


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def _matches(clause: Any, attributes: dict[str, Any]) -> bool:
    value = attributes.get(clause.attribute)
    if value is None:
        return False  # LaunchDarkly: a missing attribute matches no clause, negated or not
    text = str(value)
    tests = {"in": lambda v: value == v or text == str(v), "startsWith": text.startswith,
             "endsWith": text.endswith, "contains": lambda v: str(v) in text,
             "matches": lambda v: re.search(str(v), text) is not None}
    hit = any(tests[clause.op](v) for v in clause.values)
    return hit != clause.negate


def audience_of(manifest: Manifest, config: str, control: str, context: dict[str, Any],
                winners: dict[str, str] | None = None) -> str:
    """The segment whose targeting rule serves `control` to the offline experiment's context;
    `winners` (segment -> variation) are the promoted winners that replaced a rule's variation."""
    for rule in manifest.config(config).targeting.rules:
        segment = manifest.segment(rule.segment)
        if any(all(_matches(c, context) for c in r.clauses) for r in segment.rules):
            if (winners or {}).get(rule.segment, rule.variation) != control:
                break
            return rule.segment
    raise RuleBroken(f"no segment rule of {config} serves {control} to the context {context} "
                     "(it gets the default variation); an online experiment needs an audience "
                     "segment: pass --audience SEGMENT")


def _variation_fields(base: Any, overrides: dict[str, Any]) -> dict[str, Any]:
    """The `experiment_variations` fields that carry `overrides` over the `base` variation."""
    refused = [p for p in overrides if p in UNREPRESENTABLE]
    if refused:
        raise RuleBroken(f"{', '.join(refused)} cannot be promoted: a variation of "
                         "bootstrap/manifest.yaml carries temperature and max_tokens only")
    fields: dict[str, Any] = {}
    parameters, custom = base.parameters.model_dump(), base.custom.model_dump()
    for param, value in overrides.items():
        if param == "model":
            fields["provider"], fields["model"] = split_model(value)
        elif param in ("tools", "instructions"):
            fields[param] = list(value) if param == "tools" else value
        elif param in parameters:
            parameters[param] = value
            fields["parameters"] = parameters
        else:
            custom[param] = value
            fields["custom"] = custom
    return fields


def _change_text(overrides: dict[str, Any]) -> str:
    shown = {k: (v if k != "instructions" else f"{len(v)} characters of instructions")
             for k, v in overrides.items()}
    return ", ".join(f"{k}={','.join(v) if isinstance(v, list) else v}" for k, v in shown.items())


def _overlap_message(exp: Any, *, running: bool) -> str:
    """Why a second experiment on one config and audience is refused, and how to end the first."""
    arms = " | ".join(exp.split)
    state = "is still running" if running else "is defined (not ended)"
    return (f"experiment {exp.key} already targets {exp.audience} users of {exp.config} and "
            f"{state}; two experiments cannot share an audience of one config. End it first: "
            f"promote its winner (python -m bootstrap.promote {exp.key} {{{arms}}}) or remove "
            f"it from experiments.yaml; or pass --audience, or promote an offline experiment "
            f"whose --context falls in another segment")


def plan_promotion(state: dict[str, Any], name: str, *, manifest_data: dict[str, Any],
                   experiments_data: dict[str, Any], template: dict[str, Any],
                   audience: str | None = None, key: str | None = None,
                   running: set[str] | None = None,
                   ended: dict[str, str] | None = None) -> Promotion:
    """What promoting variant `name` of the offline experiment `state` adds, checked.

    An experiment already on the same config and audience refuses the promotion unless it has
    ended (`ended`: key -> the winner promoted); `running` names the ones the backend runs.
    """
    exp_key = state["key"]
    if name == BASELINE:
        raise RuleBroken("the baseline is what production serves already; promote a variant")
    variant = state["variants"].get(name)
    if variant is None:
        raise RuleBroken(f"{exp_key} has no variant {name!r}; variants: "
                         f"{', '.join(v for v in state['variants'] if v != BASELINE)}")
    if variant["status"] != "complete":
        raise RuleBroken(f"variant {name} of {exp_key} is {variant['status']}: promote a "
                         f"variant that has run (python -m tools.offline_experiment run "
                         f"{exp_key} {name})")
    changed = {s: o for s, o in effective_overrides(state, name).items() if o}
    if len(changed) != 1:
        raise RuleBroken(f"variant {name} changes {len(changed)} steps ({', '.join(changed)}); "
                         "an online experiment tests one config: promote a variant whose "
                         "chain changes one step")
    ((config, overrides),) = changed.items()
    manifest = parse_manifest(manifest_data)
    control = state["baseline_config"][config]["variation_key"]
    evs = {ev.key: ev for ev in manifest.experiment_variations if ev.config == config}
    base_key, inherited = control, {}
    if control in evs:  # the baseline is itself a promoted experiment variation
        ev = evs[control]
        base_key = ev.based_on
        inherited = ev.model_dump(exclude={"config", "based_on", "key", "name"},
                                  exclude_none=True)
    base = manifest.config(config).variation(base_key)
    if base is None:
        raise RuleBroken(f"the baseline of {exp_key} was served {config}/{control}, which "
                         "bootstrap/manifest.yaml does not define")
    treatment = key or slug(f"{exp_key}-{name}")
    if manifest.config(config).variation(treatment) is not None or treatment in evs:
        raise RuleBroken(f"{config} already has a variation {treatment} (promoted before?); "
                         "pass --variation-key for another")
    variation = {"config": config, "based_on": base_key, "key": treatment,
                 "name": f"{name} of offline experiment {exp_key} ({_change_text(overrides)})",
                 **inherited}
    base_for_fields = manifest.experiment_variations_for(config)
    resolved_control = next((v for v in base_for_fields if v.key == control), base)
    variation.update(_variation_fields(resolved_control, overrides))
    context = {k: v for k, v in state["context"].items() if k != "key"}
    ended = ended or {}
    current = parse_experiments(experiments_data)
    winners = {e.audience: ended[e.key] for e in current
               if e.config == config and e.key in ended}
    segment = audience or audience_of(manifest, config, control, context, winners)
    rest = {k: v for k, v in template.items() if k not in (*FILLED_FIELDS, "hypothesis")}
    hypothesis = str(template.get("hypothesis", "")).format(
        variant=name, experiment=exp_key, change=_change_text(overrides), control=control)
    experiment = {"key": treatment, "name": f"{name} ({exp_key}, offline)",
                  "hypothesis": hypothesis, "config": config, "audience": segment,
                  "control": control, "treatment": treatment,
                  "split": {control: 50, treatment: 50}, **rest,
                  "seed": zlib.crc32(treatment.encode()) % 100_000}
    new_manifest_data = {**manifest_data, "experiment_variations": [
        *(manifest_data.get("experiment_variations") or []), variation]}
    new_manifest = parse_manifest(new_manifest_data, "bootstrap/manifest.yaml + promoted")
    for exp in current:
        if exp.config == config and exp.audience == segment and exp.key not in ended:
            raise RuleBroken(_overlap_message(exp, running=exp.key in (running or set())))
    experiments = parse_experiments(
        {"experiments": [*experiments_data["experiments"], experiment]},
        "experiments.yaml + promoted")
    if errors := experiment_errors(new_manifest, experiments):
        raise ManifestError("the promoted experiment does not match the manifest:\n  - "
                            + "\n  - ".join(errors))
    return Promotion(variation, experiment, new_manifest, experiments)


def dump_item(item: dict[str, Any]) -> str:
    """One YAML list item, indented two spaces like the repo's files."""
    text = yaml.safe_dump([item], sort_keys=False, allow_unicode=True, width=95)
    return "".join(f"  {line}" if line.strip() else line
                   for line in text.splitlines(keepends=True))


def append_to_list(text: str, key: str, item: dict[str, Any]) -> str:
    """`text` with `item` appended to its top-level list `key`; comments and anchors stay."""
    lines = text.splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if re.match(rf"^{key}:\s*(\[\])?\s*$", line)),
                 None)
    block = dump_item(item)
    if start is None:
        return text.rstrip("\n") + f"\n\n{key}:\n{block}"
    lines[start] = f"{key}:\n"  # `key: []` becomes a block list
    end = start + 1
    for i in range(start + 1, len(lines)):
        if lines[i].strip() and not lines[i].startswith((" ", "#")):
            break
        if lines[i].strip() and not lines[i].lstrip().startswith("#"):
            end = i + 1
    prefix = "".join(lines[:end])
    separator = "\n" if key == "experiments" and end > start + 1 else ""
    if not prefix.endswith("\n"):
        prefix += "\n"
    return prefix + separator + block + "".join(lines[end:])


def start_on_backend(promotion: Promotion, *, local: bool, flags_path: Path,
                     settings: Settings, dry_run: bool) -> None:
    """Start the promoted experiment: the flag file's rollout, or LaunchDarkly's iteration."""
    exp = next(e for e in promotion.experiments if e.key == promotion.experiment["key"])
    if local:
        if not flags_path.exists():
            raise ManifestError(f"{flags_path} does not exist; run python -m "
                                "bootstrap.create_configs and python -m "
                                "bootstrap.experiment_variations first")
        state = current_state(flags_path).model_copy(deep=True)
        state.experiments[exp.key] = ExperimentState(status="running")
        sync_flag_file(flags_path, promotion.manifest, promotion.experiments, state,
                       dry_run=dry_run)
        print(f"{exp.key}: {describe_split(exp)}")
        return
    with LaunchDarklyClient.from_settings(settings) as client:
        project, environment = settings.LD_PROJECT_KEY, settings.LD_ENVIRONMENT
        sync = LaunchDarklySync(client, project, environment, dry_run=dry_run)
        variations = promotion.manifest.experiment_variations_for(exp.config)
        sync.sync_config(promotion.manifest, exp.config, variations)
        if not dry_run:
            verify_served(sync, exp.config, variations)
        lab = LaunchDarklyExperiments(client, project, environment, dry_run=dry_run)
        lab.sync_metrics(list(exp.metrics))
        lab.start(exp, lab.sync_experiment(exp))
    changes = sync.changes + lab.changes
    print(f"{'dry run: ' if dry_run else ''}{len(changes)} change(s) for LaunchDarkly project "
          f"{project} ({environment}); {exp.key}: {describe_split(exp)}")


def read_yaml_file(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ExperimentConfigError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ExperimentConfigError(f"{path}: expected a mapping at the top level")
    return text, data


def experiment_states(local: bool, flags_path: Path, settings: Settings
                      ) -> tuple[set[str], dict[str, str]]:
    """Running experiment keys and ended ones (key -> winner): the flag file's state, or the
    LaunchDarkly state file `bootstrap.promote` keeps; no state yet means nothing has ended."""
    if local:
        state = current_state(flags_path) if flags_path.exists() else None
    else:
        state = load_state(launchdarkly_state_path(settings.DATA_DIR))
    entries = state.experiments if state is not None else {}
    return ({k for k, e in entries.items() if e.status == "running"},
            {k: e.winner or "" for k, e in entries.items() if e.status == "promoted"})


def cmd_promote(store: Any, args: Any, settings: Settings) -> int:
    """The `promote` command: plan, print, then (without --dry-run) start and write."""
    state = store.load(args.key)
    manifest_text, manifest_data = read_yaml_file(args.manifest)
    experiments_text, experiments_data = read_yaml_file(args.experiments)
    _, template = read_yaml_file(args.template)
    backend = resolve_backend(args.backend, settings)
    flags_path = args.flags_path or settings.flags_path
    running, ended = experiment_states(backend == "local", flags_path, settings)
    promotion = plan_promotion(state, args.name, manifest_data=manifest_data,
                               experiments_data=experiments_data, template=template,
                               audience=args.audience, key=args.variation_key,
                               running=running, ended=ended)
    print(f"variation (appended to experiment_variations in {args.manifest}):")
    print(dump_item(promotion.variation), end="")
    print(f"experiment (appended to experiments in {args.experiments}):")
    print(dump_item(promotion.experiment), end="")
    if args.dry_run:
        print("dry run: nothing written")
        return 0
    start_on_backend(promotion, local=backend == "local", flags_path=flags_path,
                     settings=settings, dry_run=False)
    write_text_atomic(args.manifest, append_to_list(
        manifest_text, "experiment_variations", promotion.variation))
    write_text_atomic(args.experiments, append_to_list(
        experiments_text, "experiments", promotion.experiment))
    print(f"promoted {args.key}/{args.name}: variation {promotion.variation['key']} of "
          f"{promotion.variation['config']}, experiment {promotion.experiment['key']} running")
    return 0


def add_promote_parser(sub: Any) -> None:
    from bootstrap.manifest import DEFAULT_PATH as MANIFEST_PATH
    from utils.experiments.definitions import DEFAULT_PATH as EXPERIMENTS_PATH

    promote = sub.add_parser("promote", help="a variant -> a variation and an online experiment")
    promote.add_argument("key")
    promote.add_argument("name")
    promote.add_argument("--dry-run", action="store_true",
                         help="print the variation and the experiment; write nothing")
    promote.add_argument("--backend", choices=["local", "launchdarkly"], default=None,
                         help="default: launchdarkly when LD_API_KEY is set, else local")
    promote.add_argument("--audience", default=None,
                         help="the segment to experiment on (default: the one whose rule "
                              "served the baseline)")
    promote.add_argument("--variation-key", default=None,
                         help="the new variation's and experiment's key (default KEY-NAME)")
    promote.add_argument("--manifest", type=Path, default=MANIFEST_PATH)
    promote.add_argument("--experiments", type=Path, default=EXPERIMENTS_PATH)
    promote.add_argument("--template", type=Path, default=TEMPLATE_PATH)
    promote.add_argument("--flags-path", type=Path, default=None)
