"""The web UI in a real headless Chromium: chat as the EU paid user, feedback, experiments, configs.

Needs Debian's Chromium (`apt-get install chromium`); Playwright drives it through
`executable_path`, so no browser is ever downloaded. The app runs for real under uvicorn in a
background thread, on the bootstrapped flag file and a temporary event store.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
MESSAGE = ("Hi, I'm Maria Gonzalez from Acme GmbH in Munich, mail maria.g@acme.de — "
           "how does Q-learning work?")
TIMEOUT_MS = 20_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"no Chromium at {CHROMIUM}: apt-get install chromium "
                              "(or set CHROMIUM_PATH) to run the browser tests"),
]


def write_bootstrapped_flags(path: Path) -> None:
    """The real flag file: configs, segments, targeting and both experiments started."""
    from bootstrap import create_configs, experiment_variations

    args = ["--backend", "local", "--flags-path", str(path)]
    assert create_configs.main(args) == 0, "bootstrap.create_configs failed"
    assert experiment_variations.main(args) == 0, "bootstrap.experiment_variations failed"


@pytest.fixture
def flags(tmp_path: Path) -> Path:
    return tmp_path / "flags.json"


@pytest.fixture
def base_url(flags: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The real app under uvicorn on a free 127.0.0.1 port, over a fresh flag file and store."""
    import uvicorn

    from api.main import create_app
    from utils.settings import get_settings

    monkeypatch.setenv("LOCAL_FLAGS_PATH", str(flags))
    monkeypatch.setenv("EVENTS_DB", str(tmp_path / "events.db"))
    get_settings.cache_clear()
    write_bootstrapped_flags(flags)

    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=0,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, name="uvicorn-browser-test", daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("the API server did not start within 60 s (see the log above)")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


@pytest.fixture
def page(base_url: str):
    """A Chromium page; console errors of the app fail the test."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(base_url + "/")
            yield page
            assert not errors, f"JavaScript errors in the page: {errors}"
        finally:
            browser.close()


def test_eu_paid_user_chats_sees_redactions_gives_feedback_and_browses_tabs(
        page, flags: Path) -> None:
    from playwright.sync_api import expect

    from bootstrap import promote

    # A custom context is checked before anything is sent.
    page.get_by_test_id("user-custom").check()
    page.get_by_test_id("ctx-extra").fill("[1, 2]")
    page.get_by_test_id("message-input").fill("hello")
    page.get_by_test_id("send-button").click()
    expect(page.locator("#ctx-error")).to_contain_text("must be a JSON object")
    expect(page.get_by_test_id("user-message")).to_have_count(0)

    # Chat as the EU paid demo user: the picker fills in a read-only context.
    page.get_by_test_id("user-eu-paid").check()
    expect(page.get_by_test_id("ctx-user-id")).to_have_value("demo-eu-paid")
    expect(page.get_by_test_id("ctx-plan")).to_have_value("paid")

    page.get_by_test_id("message-input").fill(MESSAGE)
    page.get_by_test_id("send-button").click()

    answer = page.get_by_test_id("assistant-message").first
    expect(answer.get_by_test_id("answer-text")).not_to_be_empty()
    expect(answer.get_by_test_id("route-badge")).to_have_text("route: security")
    expect(answer.get_by_test_id("simulated-badge")).to_be_visible()
    # The redactions: which PII types were found, and the text support actually received.
    expect(answer.get_by_test_id("redactions")).to_be_visible()
    expect(answer.get_by_test_id("pii-types")).to_contain_text("EMAIL")
    redacted = answer.get_by_test_id("redacted-text")
    expect(redacted).to_contain_text("[EMAIL")
    expect(redacted).not_to_contain_text("maria.g@acme.de")
    # EU paid users get strict security and the eu-paid support variation.
    expect(answer.get_by_test_id("agent-security").get_by_test_id("variation")) \
        .to_have_text("strict-security")
    expect(answer.get_by_test_id("agent-support").get_by_test_id("variation")) \
        .to_have_text("eu-paid")

    answer.get_by_test_id("thumbs-up").click()
    status = answer.get_by_test_id("feedback-status")
    expect(status).to_have_attribute("data-status", "recorded")
    answer.get_by_test_id("thumbs-up").click()
    expect(status).to_have_attribute("data-status", "duplicate")

    # Experiments: both are listed, each with its verdict and a link to the HTML report.
    page.get_by_test_id("tab-experiments").click()
    for key in ("security-level", "premium-model-value"):
        card = page.locator(f'[data-testid="experiment-card"][data-key="{key}"]')
        expect(card).to_be_visible()
        expect(card.get_by_test_id("verdict-outcome")).not_to_be_empty()
        expect(card.get_by_test_id("report-link")).to_have_attribute(
            "href", f"/experiments/{key}/report")
    security = page.locator('[data-testid="experiment-card"][data-key="security-level"]')
    expect(security.get_by_test_id("users-per-arm")).to_contain_text("basic-security")
    security.get_by_text("Show the full report").click()
    report = security.frame_locator('[data-testid="report-frame"]')
    expect(report.locator("svg").first).to_be_attached()

    # Configs: the served variations, and what each demo user gets.
    page.get_by_test_id("tab-configs").click()
    support = page.locator('[data-testid="flag-card"][data-key="support-agent"]')
    expect(support.locator('tr[data-variation="claude-opus-treatment"]')).to_be_visible()
    expect(page.locator('#served-table tr[data-user="eu-paid"]')).to_contain_text("eu-paid")

    # A hot change arrives without a reload: promote the premium model for other-paid users.
    us_paid_support = page.locator(
        '#served-table tr[data-user="us-paid"] td[data-config="support-agent"]')
    expect(us_paid_support).to_have_attribute("data-in-experiment", "true")
    args = ["premium-model-value", "claude-opus-treatment", "--backend", "local",
            "--flags-path", str(flags)]
    assert promote.main(args) == 0
    expect(us_paid_support).to_have_attribute("data-in-experiment", "false")
    expect(us_paid_support).to_contain_text("claude-opus-treatment")
