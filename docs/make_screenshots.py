"""Take the README's screenshot of the web UI with headless Chromium.

    python docs/make_screenshots.py                      # own server, fresh temporary data
    python docs/make_screenshots.py --url http://127.0.0.1:8000 --tab experiments

Without --url it bootstraps a temporary flag file, starts the app (simulated models) on a
free port, chats as the EU paid demo user with a message full of personal details, and saves
the chat. With --url it uses a running server instead (for example after
`python -m tools.demo --keep-server`, so the Experiments tab has data). Uses Debian's
Chromium through Playwright's `executable_path`; it never downloads a browser.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")  # Presidio: never the network

log = logging.getLogger("make_screenshots")

CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MESSAGE = ("Hi, I'm Maria Gonzalez from Acme GmbH in Munich, mail maria.g@acme.de — "
           "how does Q-learning work?")


@contextmanager
def local_server() -> Iterator[str]:
    """The app under uvicorn on a free port, over a fresh bootstrapped flag file and store."""
    with tempfile.TemporaryDirectory(prefix="ui-screenshot-") as tmp:
        os.environ.update({"DATA_DIR": tmp, "LOCAL_FLAGS_PATH": f"{tmp}/flags.json",
                           "EVENTS_DB": f"{tmp}/events.db", "LLM_MODE": "simulated",
                           "SIM_TIME_SCALE": "0", "KB_DIR": str(ROOT / "kb")})
        import uvicorn

        from api.main import create_app
        from bootstrap import create_configs, experiment_variations

        args = ["--backend", "local", "--flags-path", f"{tmp}/flags.json"]
        if create_configs.main(args) or experiment_variations.main(args):
            raise SystemExit("bootstrapping the flag file failed (see above)")
        server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0,
                                               log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            if not thread.is_alive():
                raise SystemExit("the API server did not start (see the log above)")
            time.sleep(0.05)
        try:
            yield f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join(timeout=15)


def take_screenshot(base_url: str, out: Path, tab: str, chromium: Path) -> None:
    """Open the UI, chat once as the EU paid user (chat tab) and save a PNG of `tab`."""
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(chromium), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 1000},
                                    device_scale_factor=1)
            page.set_default_timeout(60_000)
            page.goto(f"{base_url}/#{tab}")
            if tab == "chat":
                page.get_by_test_id("user-eu-paid").check()
                page.get_by_test_id("message-input").fill(MESSAGE)
                page.get_by_test_id("send-button").click()
                answer = page.get_by_test_id("assistant-message").first
                expect(answer.get_by_test_id("answer-text")).not_to_be_empty()
                answer.get_by_test_id("thumbs-up").click()
                expect(answer.get_by_test_id("feedback-status")).to_have_attribute(
                    "data-status", "recorded")
                # Show the question, the redactions and the agent table, not the answer's end.
                page.locator("#messages").evaluate(
                    "list => { list.scrollTop = 0; }")
            elif tab == "experiments":
                expect(page.get_by_test_id("experiment-card").first).to_be_visible()
            else:
                expect(page.get_by_test_id("flag-card").first).to_be_visible()
            page.wait_for_timeout(300)  # let the last layout settle
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=tab != "chat")
        finally:
            browser.close()
    log.info("wrote %s", out)


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python docs/make_screenshots.py",
                                     description="Screenshot the web UI for the README.")
    parser.add_argument("--url", help="use this running server instead of starting one")
    parser.add_argument("--tab", choices=["chat", "experiments", "configs"], default="chat")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot-ui.png")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"),
                        help="the Chromium binary (default: Debian's %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.chromium.exists():
        print(f"error: no Chromium at {args.chromium}: apt-get install chromium, "
              "or pass --chromium PATH", file=sys.stderr)
        return 1
    if args.url:
        take_screenshot(args.url.rstrip("/"), args.out, args.tab, args.chromium)
    else:
        with local_server() as url:
            take_screenshot(url, args.out, args.tab, args.chromium)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
