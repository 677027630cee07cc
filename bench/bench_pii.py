"""Speed and accuracy figures for utils.privacy.detector: start-up cost, redact_pii p50/p99, corpus scores.

Run `python -m bench.bench_pii` (or `python bench/bench_pii.py`). Targets: p50 <= 5 ms for a
500-character message after warm-up (issue 4); on the adversarial corpus, recall >= 0.95 per
family of direct identifiers under both policies and >= 0.9 for strict-only ones (issue 16),
with the clean traps unchanged. Also prints what normalisation adds per message.
"""

from __future__ import annotations

import json
import logging
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

log = logging.getLogger(__name__)

MESSAGE = (
    "Hi, I'm Maria Gonzalez from Acme GmbH in Munich, card 4111 1111 1111 1111, mail "
    "maria.g@acme.de - how does Q-learning work? I read Sutton and Barto chapter 6 and tried "
    "TD(λ) with alpha=0.1 and gamma 0.99 on version 3.11.2. My order ORD-2024-118273 never "
    "arrived at Hauptstraße 5, 10115 Berlin; call me on +49 30 12345678. The paper at "
    "https://arxiv.org/abs/1707.06347 says PPO clips the ratio, but Thompson sampling and "
    "Monte Carlo methods are still unclear to me. Thanks for the help, Maria."
)
CLEAN = ("How does Q-learning differ from SARSA, and when is the Bellman optimality operator a "
         "contraction? I read Sutton and Barto chapter 6, tried TD(λ) with alpha=0.1, gamma "
         "0.99 on gymnasium 0.29.1, and the paper at https://arxiv.org/abs/1707.06347 (2017). "
         "Is Thompson sampling better than UCB1 for Bernoulli bandits with 10 arms? Monte Carlo "
         "returns have high variance; Dyna-Q plans with a model. Adam with lr 3e-4 diverges "
         "after step 250000. Why?")
STARTUP = ("import time; t=time.perf_counter(); from utils.privacy.detector import warm_up, redact_pii; "
           "t1=time.perf_counter(); warm_up(); t2=time.perf_counter(); "
           "redact_pii('x', 'strict'); print(t1-t, t2-t1)")


def _timings(text: str, policy: str, runs: int) -> list[float]:
    from utils.privacy.detector import redact_pii

    out = []
    for _ in range(runs):
        start = time.perf_counter()
        redact_pii(text, policy)
        out.append((time.perf_counter() - start) * 1000)
    return sorted(out)


def _fmt(ms: list[float]) -> str:
    p99 = ms[min(len(ms) - 1, int(0.99 * len(ms)))]
    return (f"p50 {statistics.median(ms):6.2f} ms  p99 {p99:6.2f} ms  "
            f"mean {statistics.fmean(ms):6.2f}")


def bench_startup() -> None:
    """Import and analyzer build in a fresh interpreter."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-c", STARTUP], capture_output=True, text=True,
                         env=env, cwd=ROOT, check=True).stdout.split()
    print(f"start-up: import {float(out[0]) * 1000:.0f} ms, warm_up {float(out[1]) * 1000:.0f} ms")


def bench_latency(runs: int = 300) -> None:
    """redact_pii latency by message length and policy, after warm-up."""
    from utils.privacy.detector import warm_up

    warm_up()
    for name, text in (("pii", MESSAGE), ("clean", CLEAN)):
        for length in (100, 300, 500):
            piece = text[:length]
            for policy in ("basic", "strict"):
                _timings(piece, policy, 20)
                print(f"{name:5s} {len(piece):3d} chars {policy:6s} "
                      f"{_fmt(_timings(piece, policy, runs))}")


def bench_accuracy() -> None:
    """Per-type scores on the committed corpus and on a corpus drawn with another seed."""
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    from make_pii_corpus import build_corpus

    from utils.privacy.detector import detect_pii, evaluate, format_report

    committed = [json.loads(line) for line in
                 (ROOT / "tests" / "data" / "pii_corpus.jsonl").read_text("utf-8").splitlines()]
    for label, rows in (("committed corpus (seed 4)", committed),
                        ("held-out draw (seed 99)", build_corpus(seed=99))):
        print(f"\n== {label}")
        pii_rows = [r for r in rows if r["kind"] == "pii"]
        clean = [r for r in rows if r["kind"] == "clean"]
        for policy in ("basic", "strict"):
            print(format_report(evaluate(pii_rows, policy), policy))
            flagged = sum(bool(detect_pii(r["text"], policy)) for r in clean)
            print(f"clean sentences flagged: {flagged}/{len(clean)}")


ADVERSARIAL = ("Hi, my name is maria gonzalez, mail maria [at] acme [dot] de or "
               "ma\u200bria.g@acme.de, see https://example.com/reset?email=maria.g%40acme.de. "
               "Call zero seven seven zero zero nine zero zero one two three, or 电话13812345678. "
               "IBAN de89 3704 0044 0532 0130 00, Reisepass C01X00T47, card "
               "４１１１ １１１１ １１１１ １１１１. I live at 10 downing street, london sw1a 2aa. "
               "How does Q-learning differ from SARSA in the Sutton and Barto book?")


def bench_normalisation(runs: int = 300) -> None:
    """Latency of a fresh scan with and without the normalised second pass."""
    from utils.privacy import detector
    from utils.privacy.normalize import identity, normalize

    detector.warm_up()
    for name, text in (("pii", MESSAGE), ("clean", CLEAN), ("adversarial", ADVERSARIAL[:500])):
        norm = [0.0] * runs
        for i in range(runs):
            start = time.perf_counter()
            normalize(text)
            norm[i] = (time.perf_counter() - start) * 1000
        timings = {}
        for label, fn in (("with", normalize), ("without", identity)):
            original = detector.normalize
            detector.normalize = fn
            try:
                out = []
                for _ in range(runs):
                    detector._scan_cache.clear()  # time the scan, not the memo
                    start = time.perf_counter()
                    detector.redact_pii(text, "strict")
                    out.append((time.perf_counter() - start) * 1000)
            finally:
                detector.normalize = original
            timings[label] = sorted(out)
        added = statistics.median(timings["with"]) - statistics.median(timings["without"])
        print(f"{name:11s} {len(text):3d} chars  normalize() p50 {statistics.median(norm):5.2f} ms"
              f"  redact strict: with {_fmt(timings['with'])}; added p50 {added:5.2f} ms")


def bench_adversarial() -> None:
    """Recall per family and policy on the committed adversarial corpus and a held-out draw."""
    sys.path.insert(0, str(ROOT / "tests" / "data"))
    from make_pii_adversarial import build_corpus

    from utils.privacy.conversation import family_recall
    from utils.privacy.detector import redact_pii

    committed = [json.loads(line) for line in (ROOT / "tests" / "data" /
                 "pii_adversarial.jsonl").read_text("utf-8").splitlines() if line]
    for label, rows in (("adversarial corpus (seed 16, committed)", committed),
                        ("adversarial held-out draw (seed 99)", build_corpus(seed=99)),
                        ("adversarial held-out draw (seed 7)", build_corpus(seed=7))):
        print(f"\n== {label}: {len(rows)} rows")
        scores = {p: family_recall(rows, p) for p in ("basic", "strict")}
        print(f"{'family':18s} {'basic':>12s} {'strict':>12s}")
        for family in scores["strict"]:
            cells = []
            for policy in ("basic", "strict"):
                c, n = scores[policy].get(family, (0, 0))
                cells.append(f"{c:3d}/{n:3d} {c / n:4.2f}" if n else "   (kept)   ")
            print(f"{family:18s} {cells[0]:>12s} {cells[1]:>12s}")
    clean = [json.loads(line) for line in (ROOT / "tests" / "data" / "pii_corpus.jsonl")
             .read_text("utf-8").splitlines() if '"kind": "clean"' in line]
    changed = sum(redact_pii(r["text"], "strict").text != r["text"] for r in clean)
    print(f"\nclean trap sentences changed by strict redaction: {changed}/{len(clean)}")


def main() -> None:
    """Print start-up cost, latency percentiles and accuracy tables."""
    logging.basicConfig(level=logging.WARNING)
    bench_startup()
    bench_latency()
    bench_normalisation()
    bench_accuracy()
    bench_adversarial()


if __name__ == "__main__":
    main()
