"""One plain sentence per verdict: what changed, how sure, what to do (no statistics words)."""

from __future__ import annotations

import math

from utils.telemetry.metrics import METRICS


def how_sure(p: float) -> str:
    """Words for a posterior probability that the treatment is better."""
    if not math.isfinite(p):
        return "cannot be told yet"
    better = max(p, 1 - p)
    if better >= 0.99:
        return "almost certainly"
    if better >= 0.9:
        return "very likely"
    if better >= 0.75:
        return "probably"
    return "not clearly"


def _primary_change(result) -> str:
    e = result.experiment
    m = result.metric(e.primary_metric)
    name = METRICS[e.primary_metric].name.lower()
    if m is None or not math.isfinite(m.comparison.relative_difference):
        return f"{name} cannot be compared yet"
    r = m.comparison.relative_difference
    p = m.comparison.probability_to_beat_control
    word = "higher" if r > 0 else "lower"
    sure = how_sure(p)
    if sure == "not clearly":
        return f"{name} is {abs(r):.1%} {word} with {e.treatment}, not clearly different"
    return f"{name} is {sure} {word} with {e.treatment} ({r:+.1%})"


def headline(result) -> str:
    """The verdict's first sentence, for someone who does not know statistics."""
    e, v, look = result.experiment, result.verdict, result.look
    change = _primary_change(result)
    if v.outcome == "INVALID":
        return (f"Do not read {e.name} yet: users did not split between {e.control} and "
                f"{e.treatment} as configured, so assignment or logging is broken.")
    if v.outcome == "SHIP":
        early = (" early, because the evidence is overwhelming" if look is not None
                 and look.kind == "interim" else "")
        return f"Switch to {e.treatment}{early}: {change}, and every check passed."
    if v.outcome == "KEEP":
        failed = [c for c in result.criteria if not c.passed]
        worst = failed[0] if failed else None
        what = METRICS[worst.metric].name.lower() if worst and worst.metric in METRICS else (
            "the value for the cost")
        return (f"Stay with {e.control}: {change}; {e.treatment} falls short on {what}"
                f"{' and more data would not change that' if any(c.futile for c in failed) else ''}.")
    if min(result.users.values(), default=0) < 100:
        return f"Keep the experiment running: too few users so far to say anything ({change})."
    progress = ""
    if look is not None and look.kind == "interim":
        progress = (f"; {look.users_per_arm:,} of the planned {look.horizon_per_arm:,} users "
                    f"per arm so far ({look.progress:.0%})")
    return f"Keep the experiment running, no decision yet: {change}{progress}."
