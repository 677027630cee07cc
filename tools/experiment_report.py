"""Experiment verdicts from the local event store: terminal, JSON or HTML.

    python -m tools.experiment_report [--experiment KEY] [--json] [--html PATH] [--db PATH]
        [--url URL]

JSON schema (stable; numbers that are undefined are null and a `reason` says why):

    {"simulated": bool,                  # any event row with simulated = 1
     "db_path": str, "generated_at": unix seconds, "notes": [str],
     "experiments": [{
        "key", "name", "config", "control", "treatment", "threshold", "primary_metric",
        "users": {variation: n}, "excluded_users": n, "srm_p_value": p,
        "metrics": [{"key", "statistic", "higher_is_better", "unit", "users_with_values",
                     "unknown_users": {variation: n},
                     "control_value", "treatment_value", "relative_difference",
                     "ci_low", "ci_high", "interval_low", "interval_high",
                     "probability_to_beat_control", "expected_loss", "credible", "reason"}],
        "criteria": [{"kind", "metric", "description", "observed", "threshold",
                      "comparator", "passed", "detail", "probability_met", "futile",
                      "blocked": str | null}],
        "futility_floor": p, "failed_runs": {variation: n},
        "unpriced_models": [{"variation", "model", "runs"}], "pricing_hint": str | null,
        "verdict": {"outcome": "SHIP" | "KEEP" | "NEED_MORE_DATA" | "INVALID",
                    "variation": str | null, "summary": str, "headline": str},
        "users_needed": null | {"per_arm", "additional", "by_metric": {metric: n}, "note"},
        "monitoring": {"method": "planned_horizon" | "single_look",
                       "look": "interim" | "final" | "single", "users_per_arm",
                       "horizon_per_arm", "progress", "early_stop_probability",
                       "later_users", "label"},
        "agent_split": [{"metric", "of_mean", "difference", "agents": [{"agent", "control",
                         "treatment", "difference", "unknown_runs"}]}],
        "timeline": [{"ts", <control>: cumulative users, <treatment>: cumulative users}]}],
     "interaction": {"experiments": [a, b], "metric", "cells": [{a: arm, b: arm, "users",
                     "value"}], "interaction", "ci_low", "ci_high", "reason"}}  # when present

`relative_difference` is treatment / control - 1 (not sign-flipped). `ci_low`/`ci_high`
bound it at the experiment's threshold with LaunchDarkly's delta method (can leave the
possible range at small samples); `interval_low`/`interval_high` bound it from posterior
draws (bootstrap for percentiles), never below -100%, and are what every view shows.
`probability_to_beat_control` and `expected_loss` are in the metric's good direction.
`probability_met` is the posterior probability that a criterion holds; `futile` means it is
below `futility_floor`. `headline` is the verdict in one plain sentence. `monitoring` says
which look this is against the planned horizon (docs/STATISTICS.md §6); `agent_split` gives
each summed metric's per-user means by agent (§6a). A cost-value ratio of +inf (cheaper and better) is null in JSON.
Exit status: 0 whenever a report was produced, whatever the outcomes; 2 on bad input, 1
when the store is unreadable.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from utils.experiments.decision_rules import PRICING_HINT
from utils.experiments.definitions import ExperimentConfigError, load_experiments
from utils.experiments.report_format import (
    SIMULATED_BANNER,
    criterion_scale,
    format_failed_runs,
    format_interaction,
    format_loss,
    format_probability,
    format_relative,
    format_unpriced,
    format_value,
    split_rows,
    split_title,
)
from utils.experiments.report_html import render_html
from utils.experiments.verdicts import (
    EventStoreError,
    ExperimentResult,
    InteractionResult,
    Report,
    build_report,
    report_to_dict,
)
from utils.settings import get_settings
from utils.telemetry.store_url import resolve_location

logger = logging.getLogger(__name__)

OUTCOME_STYLE = {"SHIP": "bold white on green", "KEEP": "bold black on yellow",
                 "NEED_MORE_DATA": "bold white on blue", "INVALID": "bold white on red"}


def _bar(fill: float, mark: float, passed: bool, width: int = 20) -> Text:
    """A text bar filled to the observed value with `|` at the bar it must clear."""
    cells = ["█" if i < round(fill * width) else "·" for i in range(width)]
    cells[min(width - 1, int(mark * width))] = "|"
    return Text("".join(cells), style="green" if passed else "red")


# Below this console width the metric table splits in two, so no number is ever cut.
NARROW_WIDTH = 110


def _metric_tables(r: ExperimentResult, width: int) -> list[Table]:
    """The metrics: one table on a wide console, two (values; comparison) on a narrow one."""
    e = r.experiment
    columns = [(e.control, "control"), (e.treatment, "treatment"),
               (f"relative diff [{e.threshold:.0%} interval]", "relative"),
               ("P(beat control)", "p"), ("expected loss", "loss")]
    groups = [columns] if width >= NARROW_WIDTH else [columns[:2], columns[2:]]
    tables = []
    for i, group in enumerate(groups):
        title = "Metrics" if i == 0 else "Metrics: treatment against control"
        table = Table(title=title, title_justify="left", expand=True)
        table.add_column("metric", no_wrap=True)
        for header, _ in group:
            table.add_column(header, justify="right")
        for m in r.metrics:
            c = m.comparison
            cells = {"control": format_value(m.key, c.control_value),
                     "treatment": format_value(m.key, c.treatment_value),
                     "relative": format_relative(c.relative_difference, c.interval_low,
                                                 c.interval_high),
                     "p": format_probability(c.probability_to_beat_control),
                     "loss": format_loss(m.key, c.expected_loss)}
            arrow = "↑" if m.definition.higher_is_better else "↓"
            table.add_row(f"{m.definition.name} {arrow}", *(cells[name] for _, name in group))
        tables.append(table)
    notes = [f"{m.key}: {m.comparison.reason}" for m in r.metrics if m.comparison.reason]
    notes.append("Intervals from posterior draws (bootstrap for p95); p95 latency is of each "
                 "user's total over all agents, not per request.")
    tables[-1].caption = "\n".join(notes)
    tables[-1].caption_justify = "left"
    return tables


def _criteria_table(r: ExperimentResult) -> Table:
    table = Table(title="Decision: ship if all pass", title_justify="left", expand=True)
    table.add_column("criterion", ratio=3, overflow="fold")
    table.add_column("", no_wrap=True)
    table.add_column("result", justify="center", no_wrap=True)
    for c in r.criteria:
        fill, mark = criterion_scale(c)
        result = Text("PASS", style="bold green") if c.passed else Text("FAIL", style="bold red")
        label = Text(c.in_words)
        label.append(f"\n{c.metric.replace('/', ' / ')}: {c.description}", style="dim")
        if c.detail:
            label.append(f"; {c.detail}", style="dim")
        table.add_row(label, _bar(fill, mark, c.passed, width=12), result)
    return table


def _split_tables(r: ExperimentResult) -> list[Table]:
    """Which agent moved it: per summed metric, its difference agent by agent.

    One small table per metric, titled by it, so the four columns fit 80 columns whatever
    the metric's name.
    """
    e = r.experiment
    tables = []
    for split in r.agent_splits:
        table = Table(title=split_title(split), title_justify="left", expand=True)
        table.add_column("agent", ratio=2, overflow="fold")
        table.add_column(e.control, justify="right", overflow="fold")
        table.add_column(e.treatment, justify="right", overflow="fold")
        table.add_column("difference", justify="right", no_wrap=True)
        for agent, control, treatment, diff in split_rows(split):
            table.add_row(agent, control, treatment, diff)
        tables.append(table)
    return tables


def experiment_panel(r: ExperimentResult, width: int = NARROW_WIDTH) -> Panel:
    """One experiment: verdict banner, users, SRM, metrics and criteria."""
    e = r.experiment
    banner = Text(f" {r.verdict.summary} ", style=OUTCOME_STYLE[r.verdict.outcome])
    users = "  ".join(f"{k}: {v:,}" for k, v in r.users.items())
    split = "/".join(f"{e.split[v]:g}" for v in e.variations)
    info = Text(f"Users per arm  {users}   (excluded: {r.excluded_users:,})\n"
                f"Sample ratio   p = {r.srm_p_value:.3g} against {split}"
                f"{'  MISMATCH' if r.verdict.outcome == 'INVALID' else ''}\n"
                f"Failed runs    {format_failed_runs(r.failed_runs)}\n"
                f"Look           {r.look.label if r.look else 'single look'}")
    parts = [Text(r.headline, style="bold"), banner, info] if r.headline else [banner, info]
    if r.unpriced_models:
        parts.append(Text(f"Unpriced: {format_unpriced(r.unpriced_models)} have no price, so "
                          f"their users' cost is unknown and cost criteria cannot pass; "
                          f"{PRICING_HINT}.", style="bold yellow"))
    parts += [*_metric_tables(r, width), _criteria_table(r)]
    if r.agent_splits:
        parts.append(Text("Which agent moved it (per-user means; difference = treatment - "
                          "control)", style="bold"))
        parts.extend(_split_tables(r))
    if r.users_needed:
        n = r.users_needed
        parts.append(Text(f"Users still needed: ~{n['additional']:,} more "
                          f"({n['per_arm']:,} per arm). {n['note']}.", style="cyan"))
    return Panel(Group(*parts), title=f"[bold]{e.name}[/bold] ({e.key}, {e.config})",
                 subtitle=f"{e.control} vs {e.treatment}")


def interaction_panel(i: InteractionResult) -> Panel:
    res = i.result
    (a_c, a_t), (b_c, b_t) = i.arms
    table = Table(title=f"{i.metric}: rows {i.experiments[0]}, columns {i.experiments[1]}")
    table.add_column("")
    table.add_column(b_c, justify="right")
    table.add_column(b_t, justify="right")
    for x, name in ((0, a_c), (1, a_t)):
        table.add_row(name, *(f"{format_value(i.metric, res.values[x][y])} "
                              f"({res.users[x][y]:,})" for y in (0, 1)))
    est = format_interaction(i.metric, res.interaction, res.ci_low, res.ci_high)
    text = Text(f"Interaction (difference of differences): {est}  {res.reason or ''}")
    return Panel(Group(table, text), title="Interaction of experiments sharing users")


def render_terminal(report: Report, console: Console) -> None:
    """Print the report with rich."""
    if report.simulated:
        console.print(Panel(Text(SIMULATED_BANNER, style="bold black on dark_orange")))
    for note in report.notes:
        console.print(f"[yellow]{note}[/yellow]")
    for r in report.experiments:
        console.print(experiment_panel(r, console.width))
    if report.interaction is not None:
        console.print(interaction_panel(report.interaction))


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m tools.experiment_report",
                                description="Verdicts of the experiments from the event store.")
    p.add_argument("--experiment", metavar="KEY", help="only this experiment")
    p.add_argument("--json", action="store_true", help="print the JSON report to stdout")
    p.add_argument("--html", metavar="PATH", type=Path, help="write a self-contained HTML report")
    p.add_argument("--db", metavar="PATH", type=Path,
                   help="SQLite event store to read (default: EVENTS_URL, else EVENTS_DB, "
                        "else data/events.db)")
    p.add_argument("--url", metavar="URL",
                   help="event store as sqlite:///PATH or postgresql://...; wins over --db")
    p.add_argument("--experiments-file", metavar="PATH", type=Path,
                   help="experiment definitions (default: EXPERIMENTS_FILE, else "
                        "bootstrap/experiments.yaml)")
    return p


def main(argv: list[str] | None = None) -> int:
    """Build the report and show it; exit 2 on bad input, 1 when the store is unreadable."""
    args = _parser().parse_args(argv)
    err = Console(stderr=True)
    try:
        db = (resolve_location(args.url, args.db) if args.url or args.db
              else get_settings().events_location)
    except ValueError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 2
    try:
        experiments = load_experiments(args.experiments_file
                                       or get_settings().EXPERIMENTS_FILE)
        report = build_report(db, experiments, experiment_key=args.experiment)
    except (ExperimentConfigError, KeyError) as exc:
        err.print(f"[red]error:[/red] {exc.args[0] if isinstance(exc, KeyError) else exc}")
        return 2
    except EventStoreError as exc:
        err.print(f"[red]error:[/red] {exc}")
        return 1
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(render_html(report), encoding="utf-8")
        err.print(f"wrote {args.html}")
    if args.json:
        sys.stdout.write(json.dumps(report_to_dict(report), indent=2, allow_nan=False) + "\n")
    elif not args.html:
        render_terminal(report, Console())
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    raise SystemExit(main())
