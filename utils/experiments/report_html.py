"""Self-contained HTML experiment report with inline SVG charts (no scripts, no network)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape

import numpy as np
from scipy import stats as sps

from utils.experiments.decision_rules import PRICING_HINT
from utils.experiments.report_format import (
    SIMULATED_BANNER,
    criterion_scale,
    format_failed_runs,
    format_interaction,
    format_loss,
    format_observed,
    format_probability,
    format_relative,
    format_threshold,
    format_unpriced,
    format_value,
    split_rows,
    split_title,
)
from utils.experiments.verdicts import ExperimentResult, InteractionResult, MetricResult, Report

CONTROL_COLOUR, TREATMENT_COLOUR = "#5b6b7f", "#d9480f"
GOOD, BAD, NEUTRAL = "#2b8a3e", "#c92a2a", "#868e96"
OUTCOME_COLOUR = {"SHIP": GOOD, "KEEP": "#e67700", "NEED_MORE_DATA": "#1c7ed6", "INVALID": BAD}

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;
max-width:1100px;color:#212529;padding:0 1rem}
h1{font-size:1.6rem}h2{margin-top:2.5rem;border-bottom:1px solid #dee2e6;padding-bottom:.3rem}
.banner{padding:.8rem 1rem;border-radius:6px;color:#fff;font-weight:600;margin:.8rem 0}
.sim{background:#f08c00;color:#212529}
table{border-collapse:collapse;width:100%;margin:.8rem 0;font-size:.9rem}
th,td{border-bottom:1px solid #e9ecef;padding:.35rem .5rem;text-align:right}
th:first-child,td:first-child,th:last-child,td:last-child{text-align:left}
.pass{color:#2b8a3e;font-weight:600}.fail{color:#c92a2a;font-weight:600}
.muted{color:#868e96;font-size:.85rem}
.charts{display:flex;flex-wrap:wrap;gap:1.5rem}
figure{margin:0}figcaption{font-size:.85rem;color:#495057;margin-bottom:.3rem}
svg text{font-family:system-ui,sans-serif;font-size:11px;fill:#343a40}
"""


def _svg(width: int, height: int, body: list[str], label: str) -> str:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">'
            + "".join(body) + "</svg>")


def _text(x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {extra}>{escape(s)}</text>'


def forest_chart(result: ExperimentResult) -> str:
    """Relative difference of each metric with its interval, against zero."""
    rows = [m for m in result.metrics if math.isfinite(m.comparison.relative_difference)]
    width, left, right, row_h = 640, 190, 30, 28
    height = 40 + row_h * max(len(rows), 1)
    bounds = [0.0]
    for m in rows:
        c = m.comparison
        bounds += [v for v in (c.interval_low, c.interval_high, c.relative_difference)
                   if math.isfinite(v)]
    # Clip the axis so one metric with almost no data does not flatten all the others.
    points = [m.comparison.relative_difference for m in rows]
    lo = max(min(bounds), min([-1.0, *points]))
    hi = min(max(bounds), max([1.0, *points]))
    pad = 0.1 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad

    def x(v: float) -> float:
        v = min(max(v, lo), hi)
        return left + (v - lo) / (hi - lo) * (width - left - right)

    body = [f'<line x1="{x(0):.1f}" y1="10" x2="{x(0):.1f}" y2="{height - 20}" '
            f'stroke="{NEUTRAL}" stroke-dasharray="4 3"/>',
            _text(x(0), height - 6, "0%", "middle"),
            _text(x(lo), height - 6, f"{lo:+.0%}", "start"),
            _text(x(hi), height - 6, f"{hi:+.0%}", "end")]
    if not rows:
        body.append(_text(width / 2, 30, "no metric has a defined relative difference yet",
                          "middle"))
    for i, m in enumerate(rows):
        c = m.comparison
        y = 25 + i * row_h
        good = (c.relative_difference > 0) == m.definition.higher_is_better
        colour = GOOD if good else BAD
        body.append(_text(8, y + 4, m.key))
        if math.isfinite(c.interval_low) and math.isfinite(c.interval_high):
            body.append(f'<line x1="{x(c.interval_low):.1f}" y1="{y}" '
                        f'x2="{x(c.interval_high):.1f}" '
                        f'y2="{y}" stroke="{colour}" stroke-width="3"/>')
        body.append(f'<circle cx="{x(c.relative_difference):.1f}" cy="{y}" r="5" '
                    f'fill="{colour}"><title>{escape(m.key)}: '
                    f'{escape(format_relative(c.relative_difference, c.interval_low, c.interval_high))}'
                    "</title></circle>")
    return _svg(width, height, body, "relative difference per metric")


def criteria_chart(result: ExperimentResult) -> str:
    """One bar per criterion: observed position and the bar it must clear."""
    width, left, row_h = 640, 300, 30
    height = 20 + row_h * max(len(result.criteria), 1)
    inner = width - left - 20
    body = []
    for i, c in enumerate(result.criteria):
        y = 10 + i * row_h
        fill, mark = criterion_scale(c)
        colour = GOOD if c.passed else BAD
        body.append(_text(8, y + 14, f"{c.metric.split('/')[0]}: {c.kind}"[:52],
                          extra='font-size="10"'))
        body.append(f'<rect x="{left}" y="{y + 3}" width="{inner}" height="16" fill="#f1f3f5"/>')
        body.append(f'<rect x="{left}" y="{y + 3}" width="{fill * inner:.1f}" height="16" '
                    f'fill="{colour}"><title>{escape(c.in_words)}</title></rect>')
        body.append(f'<line x1="{left + mark * inner:.1f}" y1="{y}" '
                    f'x2="{left + mark * inner:.1f}" y2="{y + 22}" stroke="#212529" '
                    'stroke-width="2"/>')
    return _svg(width, height, body, "criteria against their bars")


def _density_curves(m: MetricResult) -> tuple[np.ndarray, list[np.ndarray]] | None:
    post = m.comparison.posterior
    if post is None:
        return None
    family, c, t = post
    if family == "beta":
        lo = min(sps.beta.ppf(1e-4, *c), sps.beta.ppf(1e-4, *t))
        hi = max(sps.beta.ppf(1 - 1e-4, *c), sps.beta.ppf(1 - 1e-4, *t))
        xs = np.linspace(lo, hi, 200)
        return xs, [sps.beta.pdf(xs, *c), sps.beta.pdf(xs, *t)]
    if family == "normal":
        if not (c[1] > 0 and t[1] > 0):
            return None
        lo = min(c[0] - 4 * c[1], t[0] - 4 * t[1])
        hi = max(c[0] + 4 * c[1], t[0] + 4 * t[1])
        xs = np.linspace(lo, hi, 200)
        return xs, [sps.norm.pdf(xs, *c), sps.norm.pdf(xs, *t)]
    lo, hi = float(min(c.min(), t.min())), float(max(c.max(), t.max()))
    if hi <= lo:
        return None
    edges = np.linspace(lo, hi, 41)
    xs = (edges[:-1] + edges[1:]) / 2
    return xs, [np.histogram(d, edges, density=True)[0] for d in (c, t)]


def posterior_chart(result: ExperimentResult) -> str:
    """Posterior densities of the primary metric, control against treatment."""
    m = result.metric(result.experiment.primary_metric)
    width, height, pad = 440, 220, 30
    curves = _density_curves(m) if m else None
    if curves is None:
        return _svg(width, 60, [_text(10, 30, "no posterior to draw yet")], "posterior")
    xs, ys = curves
    ymax = max(float(np.max(y)) for y in ys) or 1.0

    def pt(xv: float, yv: float) -> str:
        px = pad + (xv - xs[0]) / (xs[-1] - xs[0]) * (width - 2 * pad)
        return f"{px:.1f},{height - pad - yv / ymax * (height - 2 * pad):.1f}"

    body = [f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
            f'stroke="{NEUTRAL}"/>']
    names = result.experiment.variations
    for y, colour, name, row in zip(ys, (CONTROL_COLOUR, TREATMENT_COLOUR), names, (0, 1),
                                    strict=True):
        points = " ".join(pt(a, b) for a, b in zip(xs, y, strict=True))
        body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                    'stroke-width="2"/>')
        body.append(f'<rect x="{width - 170}" y="{10 + 16 * row}" width="10" height="10" '
                    f'fill="{colour}"/>')
        body.append(_text(width - 155, 19 + 16 * row, name))
    body.append(_text(pad, height - 10, format_value(m.key, float(xs[0]))))
    body.append(_text(width - pad, height - 10, format_value(m.key, float(xs[-1])), "end"))
    return _svg(width, height, body, f"posterior of {m.key}")


def timeline_chart(result: ExperimentResult) -> str:
    """Cumulative users per arm over time."""
    points = result.timeline
    width, height, pad = 440, 220, 34
    if len(points) < 2:
        return _svg(width, 60, [_text(10, 30, "not enough exposures over time to draw")],
                    "users over time")
    t0, t1 = points[0]["ts"], points[-1]["ts"]
    arms = result.experiment.variations
    ymax = max(max(p[a] for a in arms) for p in points) or 1

    def pt(ts: float, n: int) -> str:
        px = pad + (ts - t0) / ((t1 - t0) or 1.0) * (width - 2 * pad)
        return f"{px:.1f},{height - pad - n / ymax * (height - 2 * pad):.1f}"

    body = [f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
            f'stroke="{NEUTRAL}"/>', _text(pad - 4, pad, f"{ymax:,}", "end")]
    for row, (arm, colour) in enumerate(zip(arms, (CONTROL_COLOUR, TREATMENT_COLOUR),
                                            strict=True)):
        line = " ".join(pt(p["ts"], p[arm]) for p in points)
        body.append(f'<polyline points="{line}" fill="none" stroke="{colour}" '
                    'stroke-width="2"/>')
        body.append(f'<rect x="{pad + 10}" y="{10 + 16 * row}" width="10" height="10" '
                    f'fill="{colour}"/>')
        body.append(_text(pad + 25, 19 + 16 * row, arm))
    for ts, anchor in ((t0, "start"), (t1, "end")):
        label = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")
        body.append(_text(pad if anchor == "start" else width - pad, height - 12, label, anchor))
    return _svg(width, height, body, "users per arm over time")


def _metric_table(r: ExperimentResult) -> str:
    rows = []
    for m in r.metrics:
        c = m.comparison
        relative = format_relative(c.relative_difference, c.interval_low, c.interval_high)
        rows.append(
            f"<tr><td title='{escape(m.key)}'>{escape(m.definition.name)}</td>"
            f"<td>{escape(format_value(m.key, c.control_value))}</td>"
            f"<td>{escape(format_value(m.key, c.treatment_value))}</td>"
            f"<td>{escape(relative)}</td>"
            f"<td>{format_probability(c.probability_to_beat_control)}</td>"
            f"<td>{escape(format_loss(m.key, c.expected_loss))}</td>"
            f"<td class='muted'>{escape(c.reason or '')}</td></tr>")
    level = f"{r.experiment.threshold:.0%}"
    return ("<table><tr><th>metric</th><th>control</th><th>treatment</th>"
            f"<th>relative difference [{level} interval]</th><th>P(beat control)</th>"
            "<th>expected loss</th><th>note</th></tr>" + "".join(rows) + "</table>")


def _criteria_table(r: ExperimentResult) -> str:
    rows = []
    for c in r.criteria:
        cls, word = ("pass", "pass") if c.passed else ("fail", "not yet")
        how = (f"{c.metric}: {c.description}; observed {format_observed(c)}, "
               f"bar {format_threshold(c)}" + (f"; {c.detail}" if c.detail else ""))
        rows.append(f"<tr><td>{escape(c.in_words)}</td><td class='{cls}'>{word}</td>"
                    f"<td class='muted'>{escape(how)}</td></tr>")
    return ("<table><tr><th>criterion</th><th>result</th><th>how it is computed</th></tr>"
            + "".join(rows) + "</table>")


def _split_html(r: ExperimentResult) -> str:
    """Which agent moved it: per-agent rows of each summed metric."""
    if not r.agent_splits:
        return ""
    e = r.experiment
    rows = []
    for split in r.agent_splits:
        rows.append(f"<tr><th colspan='4'>{escape(split_title(split))}</th></tr>")
        rows += ["<tr>" + "".join(f"<td>{escape(x)}</td>" for x in row) + "</tr>"
                 for row in split_rows(split)]
    return (f"<h3>Which agent moved it</h3><table class='agent-split'><tr><th>agent</th>"
            f"<th>{escape(e.control)}</th><th>{escape(e.treatment)}</th><th>difference</th>"
            f"</tr>{''.join(rows)}</table>")


def _look_html(r: ExperimentResult) -> str:
    """Interim, final or single look, with progress toward the planned horizon."""
    if r.look is None:
        return ""
    bar = ""
    if r.look.progress is not None:
        bar = (f" <progress max='1' value='{r.look.progress:.4f}'>{r.look.progress:.0%}"
               "</progress>")
    return (f"<p data-look='{escape(r.look.kind)}'><b>{escape(r.look.kind.title())} look</b>"
            f"{bar} {escape(r.look.label)}.</p>")


def _experiment_section(r: ExperimentResult) -> str:
    e = r.experiment
    colour = OUTCOME_COLOUR[r.verdict.outcome]
    users = ", ".join(f"{escape(k)}: {v:,}" for k, v in r.users.items())
    needed = ""
    if r.unpriced_models:
        needed += (f"<p class='fail'>Unpriced: {escape(format_unpriced(r.unpriced_models))} "
                   "have no price, so their users' cost is unknown and cost criteria cannot "
                   f"pass; {escape(PRICING_HINT)}.</p>")
    if r.users_needed:
        needed = (f"<p>Users still needed: about <b>{r.users_needed['additional']:,}</b> more "
                  f"({r.users_needed['per_arm']:,} per arm). "
                  f"{escape(r.users_needed['note'])}.</p>")
    return f"""
<section id="{escape(e.key)}">
<h2>{escape(e.name)} <span class="muted">({escape(e.key)}, config {escape(e.config)})</span></h2>
<p class="muted">{escape(e.hypothesis)}</p>
<p class="headline"><b>{escape(r.headline)}</b></p>
<div class="banner" style="background:{colour}">{escape(r.verdict.summary)}</div>
<p>Users per arm: {users}; excluded (seen in both arms): {r.excluded_users:,};
sample ratio p = {r.srm_p_value:.3g} against a
{"/".join(f"{e.split[v]:g}" for v in e.variations)} split.
Failed agent runs: {escape(format_failed_runs(r.failed_runs))}.</p>
{_look_html(r)}
{needed}
<div class="charts">
<figure><figcaption>Relative difference of each metric ({e.threshold:.0%} interval from
posterior draws) against zero; green is the good direction</figcaption>{forest_chart(r)}</figure>
<figure><figcaption>Criteria: filled to the observed value, black mark at the bar
</figcaption>{criteria_chart(r)}</figure>
<figure><figcaption>Posterior of the primary metric ({escape(e.primary_metric)})</figcaption>
{posterior_chart(r)}</figure>
<figure><figcaption>Users per arm over time (cumulative)</figcaption>{timeline_chart(r)}
</figure>
</div>
<h3>Metrics</h3>{_metric_table(r)}
{_split_html(r)}
<h3>Criteria</h3>{_criteria_table(r)}
</section>"""


def _interaction_section(i: InteractionResult) -> str:
    res = i.result
    (a_c, a_t), (b_c, b_t) = i.arms
    cells = "".join(
        f"<tr><td>{escape((a_c, a_t)[x])}</td>"
        + "".join(f"<td>{escape(format_value(i.metric, res.values[x][y]))} "
                  f"<span class='muted'>({res.users[x][y]:,} users)</span></td>" for y in (0, 1))
        + "</tr>" for x in (0, 1))
    est = format_interaction(i.metric, res.interaction, res.ci_low, res.ci_high)
    return f"""
<section><h2>Interaction: {escape(i.experiments[0])} × {escape(i.experiments[1])}</h2>
<p>Users in both experiments, {escape(i.metric)} per cell. Interaction (difference of
differences): <b>{escape(est)}</b> {escape(res.reason or '')}</p>
<table><tr><th></th><th>{escape(b_c)}</th><th>{escape(b_t)}</th></tr>{cells}</table>
</section>"""


def render_html(report: Report) -> str:
    """The whole report as one HTML document with inline CSS and SVG."""
    when = datetime.fromtimestamp(report.generated_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    sim = f'<div class="banner sim">{escape(SIMULATED_BANNER)}</div>' if report.simulated else ""
    notes = "".join(f"<p class='muted'>{escape(n)}</p>" for n in report.notes)
    sections = "".join(_experiment_section(r) for r in report.experiments)
    inter = _interaction_section(report.interaction) if report.interaction else ""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Experiment report</title><style>{CSS}</style></head>
<body><h1>Experiment report</h1>
<p class="muted">Event store {escape(report.db_path)} · generated {when}</p>
{sim}{notes}{sections}{inter}
<p class="muted">Bayesian comparisons as in docs/STATISTICS.md: Beta posteriors for
conversions, normal posteriors for means, bootstrap for percentiles; LaunchDarkly-style priors.
Intervals come from posterior draws; p95 latency is of each user's total over all agents.</p>
</body></html>
"""
