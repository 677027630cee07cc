"""Search benchmark: build times (KB and a 10x synthetic KB), query p50/p99, memory, quality.

    python -m bench.bench_search [--kb kb] [--rounds 20] [--scale 10]

Targets at KB size (issue 3): search_v1 <= 2 ms, search_v2 <= 10 ms per query, full build
<= 10 s. Tool timings include what the model reads (snippets, formatting) and the artifact.
Runs on the offline LSA backend in a temporary DATA_DIR, so it never touches data/.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

from utils.knowledge.documents import KnowledgeBase, load_knowledge_base
from utils.knowledge.search_index import LsaBackend, SearchIndex

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ROOT / "tests" / "data" / "kb_questions.jsonl"


def _percentiles(samples_ms: list[float]) -> tuple[float, float]:
    ordered = sorted(samples_ms)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered), p99


def _time(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _import_sklearn() -> None:
    import sklearn.decomposition  # noqa: F401
    import sklearn.feature_extraction.text  # noqa: F401


def make_synthetic_kb(source: Path, target: Path, scale: int) -> None:
    """`scale` copies of every document, each copy with its own title and a varied vocabulary,
    so the index really grows (no identical chunks the vectoriser could fold together)."""
    for copy in range(scale):
        for path in sorted(source.glob("*.md")):
            if path.stem.lower() == "readme":
                continue
            text = path.read_text(encoding="utf-8")
            marker = f" (variant {copy})"
            lines = text.splitlines()
            if lines and lines[0].startswith("# "):
                lines[0] += marker
            lines.append(f"\nVariant {copy} note: token{copy} appendix{copy} about {path.stem}.")
            out = target / f"copy{copy:02d}" / path.name
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text("\n".join(lines), encoding="utf-8")


def build_figures(kb_dir: Path, cache_dir: Path) -> tuple[KnowledgeBase, SearchIndex, dict]:
    """Load + chunk, fresh index build, then a rebuild that reads the vector cache."""
    shutil.rmtree(cache_dir, ignore_errors=True)
    t0 = time.perf_counter()
    kb = load_knowledge_base(kb_dir)
    t_load = time.perf_counter() - t0
    t0 = time.perf_counter()
    index = SearchIndex(kb, LsaBackend(), cache_dir=cache_dir)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    cached = SearchIndex(kb, LsaBackend(), cache_dir=cache_dir)
    t_cached = time.perf_counter() - t0
    assert cached.info.vectors_from_cache
    return kb, index, {
        "documents": len(kb.documents), "chunks": len(kb.chunks), "tokens": kb.n_tokens,
        "load_chunk_s": t_load, "index_build_s": t_build, "full_build_s": t_load + t_build,
        "index_from_cache_s": t_cached, "index_memory_mb": index.memory_bytes / 1e6,
    }


def retained_memory_mb(kb: KnowledgeBase) -> float:
    """Python heap kept by a SearchIndex (arrays, vocabularies, term lists), via tracemalloc."""
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    index = SearchIndex(kb, LsaBackend())
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    del index
    return sum(s.size_diff for s in after.compare_to(before, "filename")) / 1e6


def latency(index: SearchIndex, queries: list[str], rounds: int) -> dict[str, tuple[float, float]]:
    """p50/p99 in ms per search method and per agent tool (same index for all)."""
    import agents.tools.search as tools_mod

    methods: dict[str, Callable[[str], object]] = {
        "index.search_keyword (v1)": lambda q: index.search_keyword(q, 5),
        "index.search_vector (v2)": lambda q: index.search_vector(q, 5),
        "index.rerank": lambda q: index.rerank(q, top_k=5),
        "tool search_v1": lambda q: tools_mod.search_v1(index, q, 5),
        "tool search_v2": lambda q: tools_mod.search_v2(index, q, 5),
        "tool reranking": lambda q: tools_mod.reranking(index, q, 5),
    }
    results = {}
    for name, fn in methods.items():
        for q in queries[:5]:  # warm caches (stemmer memo, numpy paths)
            fn(q)
        samples = [_time(lambda q=q, fn=fn: fn(q)) * 1e3 for _ in range(rounds) for q in queries]
        results[name] = _percentiles(samples)
    return results


def quality(index: SearchIndex, questions: list[dict]) -> dict[str, tuple[float, float, float]]:
    """(top-1, top-3 hit rate, MRR@10) of the expected document, per method."""
    out = {}
    for name, fn in (("search_v1", index.search_keyword), ("search_v2", index.search_vector),
                     ("reranking", index.rerank)):
        top1 = top3 = mrr = 0.0
        for q in questions:
            docs = [h.doc_id for h in fn(q["question"], top_k=10)]
            expected = set(q["expected_docs"])
            rank = next((i for i, d in enumerate(docs) if d in expected), None)
            top1 += rank == 0
            top3 += rank is not None and rank < 3
            mrr += 0 if rank is None else 1 / (rank + 1)
        n = len(questions)
        out[name] = (top1 / n, top3 / n, mrr / n)
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kb", type=Path, default=ROOT / "kb")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--scale", type=int, default=10)
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")

    questions = [json.loads(line) for line in QUESTIONS.read_text().splitlines() if line]
    # A fresh process pays once for importing scikit-learn; report it apart from the build.
    import_s = _time(_import_sklearn)
    with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
        tmp_path = Path(tmp)
        kb, index, small = build_figures(args.kb, tmp_path / "cache-1x")
        available = {d.doc_id for d in kb.documents}
        questions = [q for q in questions if set(q["expected_docs"]) & available]
        queries = [q["question"] for q in questions]
        small["retained_mb"] = retained_memory_mb(kb)
        lat_small = latency(index, queries, args.rounds)
        scores = quality(index, questions)

        make_synthetic_kb(args.kb, tmp_path / "kb-x", args.scale)
        big_kb, big_index, big = build_figures(tmp_path / "kb-x", tmp_path / "cache-nx")
        big["retained_mb"] = retained_memory_mb(big_kb)
        lat_big = latency(big_index, queries, max(2, args.rounds // 4))

    print(f"== build (LSA backend, {os.cpu_count()} CPUs)")
    header = (f"{'KB':>6} {'docs':>5} {'chunks':>6} {'tokens':>8} {'load+chunk':>10} "
              f"{'index':>7} {'full':>7} {'from cache':>10} {'arrays MB':>9} {'heap MB':>8}")
    print(header)
    for label, f in (("1x", small), (f"{args.scale}x", big)):
        print(f"{label:>6} {f['documents']:>5} {f['chunks']:>6} {f['tokens']:>8,} "
              f"{f['load_chunk_s']:>9.2f}s {f['index_build_s']:>6.2f}s {f['full_build_s']:>6.2f}s "
              f"{f['index_from_cache_s']:>9.2f}s {f['index_memory_mb']:>9.1f} "
              f"{f['retained_mb']:>8.1f}")
    print(f"   target: full build <= 10 s at 1x -> {small['full_build_s']:.2f} s "
          f"(+ {import_s:.2f} s importing scikit-learn in a cold process)")

    print(f"\n== query latency, ms ({len(queries)} questions x {args.rounds} rounds at 1x)")
    print(f"{'method':<28} {'p50 1x':>8} {'p99 1x':>8} {'p50 ' + str(args.scale) + 'x':>9} "
          f"{'p99 ' + str(args.scale) + 'x':>9}")
    for name in lat_small:
        (p50, p99), (b50, b99) = lat_small[name], lat_big[name]
        print(f"{name:<28} {p50:>8.3f} {p99:>8.3f} {b50:>9.3f} {b99:>9.3f}")
    print(f"   targets at 1x: search_v1 <= 2 ms (p50 {lat_small['tool search_v1'][0]:.3f}), "
          f"search_v2 <= 10 ms (p50 {lat_small['tool search_v2'][0]:.3f})")

    print(f"\n== retrieval quality over {len(questions)} questions (expected document)")
    print(f"{'method':<12} {'top-1':>6} {'top-3':>6} {'MRR@10':>7}")
    for name, (top1, top3, mrr) in scores.items():
        print(f"{name:<12} {top1:>6.3f} {top3:>6.3f} {mrr:>7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
