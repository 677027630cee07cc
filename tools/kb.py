"""Knowledge-base command line: rebuild the search indexes, or try a query.

    python -m tools.kb index            # load, chunk, index; prints document/chunk/token counts
    python -m tools.kb search "How does SARSA differ from Q-learning?" [--tool search_v2] [-k 5]
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from utils.knowledge.documents import iter_kb_files, load_knowledge_base
from utils.knowledge.shared_index import build_search_index
from utils.settings import get_settings

log = logging.getLogger(__name__)


def index_command(console: Console, rebuild: bool) -> int:
    """Load and chunk the KB with a progress bar, then build (or refresh) the indexes."""
    settings = get_settings()
    root = Path(settings.KB_DIR)
    try:
        files = iter_kb_files(root)
    except FileNotFoundError as exc:
        console.print(f"[red]{exc}[/red]")
        return 2
    if rebuild:
        for stale in (Path(settings.DATA_DIR) / "index").glob("vectors-*"):
            stale.unlink(missing_ok=True)
    started = time.perf_counter()
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("loading documents", total=len(files) + 1)
        kb = load_knowledge_base(root, on_document=lambda d: progress.advance(task))
        progress.update(task, description="building indexes")
        index = build_search_index(
            settings, kb, on_stage=lambda s: progress.update(task, description=s))
        progress.update(task, description="done", completed=len(files) + 1)
    elapsed = time.perf_counter() - started

    table = Table(title=f"Knowledge base {root}")
    for column in ("documents", "chunks", "tokens", "tokens/chunk", "backend", "vectors"):
        table.add_column(column, justify="right")
    mean = kb.n_tokens / len(kb.chunks) if kb.chunks else 0
    table.add_row(str(len(kb.documents)), str(len(kb.chunks)), f"{kb.n_tokens:,}", f"{mean:.0f}",
                  index.info.backend, "cache" if index.info.vectors_from_cache else "built")
    console.print(table)
    if index.info.fallback_reason:
        console.print(f"[yellow]{index.info.fallback_reason}[/yellow]")
    console.print(f"KB hash {kb.content_hash[:12]}, index memory "
                  f"{index.memory_bytes / 1e6:.1f} MB, {elapsed:.2f} s")
    return 0


def search_command(console: Console, query: str, tool: str, top_k: int) -> int:
    """Run one of the agent's search tools and print what the model would read."""
    from agents.tools.registry import Toolbox

    found = Toolbox(get_settings()).build([tool])
    if not found:
        console.print(f"[red]tool {tool!r} is not available[/red]")
        return 2
    content = found[0].invoke({"query": query, "top_k": top_k})
    console.print(content, markup=False, highlight=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m tools.kb`."""
    parser = argparse.ArgumentParser(prog="python -m tools.kb", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    index_p = sub.add_parser("index", help="load, chunk and index the KB (KB_DIR)")
    index_p.add_argument("--rebuild", action="store_true",
                         help="ignore the vector cache under DATA_DIR/index and rebuild it")
    search_p = sub.add_parser("search", help="query the KB with one of the search tools")
    search_p.add_argument("query")
    search_p.add_argument("--tool", default="search_v1",
                          choices=["search_v1", "search_v2", "reranking"])
    search_p.add_argument("-k", "--top-k", type=int, default=5)
    args = parser.parse_args(argv)

    logging.basicConfig(level=get_settings().LOG_LEVEL,
                        format="%(levelname)s %(name)s: %(message)s")
    console = Console()
    if args.command == "index":
        return index_command(console, args.rebuild)
    return search_command(console, args.query, args.tool, args.top_k)


if __name__ == "__main__":
    sys.exit(main())
