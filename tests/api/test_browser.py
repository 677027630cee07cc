"""The web UI in a real headless Chromium: chat as the EU paid user, feedback, experiments,
configs and their agent graph, offline experiments.

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
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
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


OFFLINE_TASKS = [
    {"id": "ppo", "message": "What does the clipping in PPO's objective prevent?",
     "checks": [{"kind": "mentions_any", "terms": ["clip"]}]},
    {"id": "dqn", "message": "How does experience replay stabilise DQN training?",
     "checks": [{"kind": "max_cost_usd", "value": 0.5}]},
]


@pytest.fixture
def offline_made(base_url: str, tmp_path: Path) -> dict:
    """An offline experiment with a baseline and one run variant, made with the real CLI in the
    served DATA_DIR (before the page: Playwright's sync API holds the thread's event loop)."""
    import json

    from tools.offline_experiment import main

    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text("".join(json.dumps(t) + "\n" for t in OFFLINE_TASKS))
    context = '{"key": "offline-experiment", "country": "US", "plan": "free"}'
    assert main(["create", "ui-offline", "--steps", "support-agent", "--tasks", str(tasks),
                 "--context", context, "--description", "<b>not markup</b>"]) == 0
    assert main(["baseline", "ui-offline"]) == 0
    assert main(["variant", "ui-offline", "few-calls", "--step", "support-agent", "--set",
                 "max_tool_calls=0"]) == 0
    assert main(["run", "ui-offline", "few-calls"]) == 0
    from utils.experiments.offline_report import show_document, task_diff
    from utils.experiments.offline_state import StateStore
    from utils.settings import get_settings

    state = StateStore(get_settings().DATA_DIR).load("ui-offline")
    return {"document": show_document(state), "diff": task_diff(state, "baseline", "few-calls")}


def test_offline_tab_shows_the_variant_tree_the_task_diff_and_a_tasks_runs(
        offline_made: dict, page) -> None:
    from playwright.sync_api import expect

    made = offline_made
    variant = next(v for v in made["document"]["variants"] if v["name"] == "few-calls")
    page.get_by_test_id("tab-offline").click()
    item = page.locator('[data-testid="offline-item"][data-key="ui-offline"]')
    expect(item).to_be_visible()
    # The tree: the variant hangs under the baseline, with the server's figures.
    baseline = page.locator('[data-testid="variant-node"][data-name="baseline"]')
    child = baseline.locator('[data-testid="variant-node"][data-name="few-calls"]')
    expect(child).to_have_attribute("data-parent", "baseline")
    expect(child.get_by_test_id("variant-status")).to_have_text("complete")
    expect(child.get_by_test_id("pass-rate")).to_have_text(
        f"pass {variant['pass_rate'] * 100:.1f}%")
    p_better = f"P(better) {variant['comparison']['p_better'] * 100:.1f}%"
    expect(child.get_by_test_id("vs-parent")).to_contain_text("Δ vs baseline")
    expect(child.get_by_test_id("vs-parent")).to_contain_text(p_better)
    # The diff between baseline and the variant: every task, differing ones marked.
    expect(page.get_by_test_id("diff-a")).to_have_value("baseline")
    expect(page.get_by_test_id("diff-b")).to_have_value("few-calls")
    rows = page.get_by_test_id("diff-row")
    expect(rows).to_have_count(len(made["diff"]["tasks"]))
    for task in made["diff"]["tasks"]:
        row = page.locator(f'[data-testid="diff-row"][data-task="{task["task_id"]}"]')
        expect(row).to_have_attribute("data-differs", str(task["differs"]).lower())
    differing = [t for t in made["diff"]["tasks"] if t["differs"]]
    assert differing, "the variant was meant to flip a task (max_tool_calls=0)"
    expect(page.locator("#offline-diff tr.differs")).to_have_count(len(differing))
    expect(page.get_by_test_id("diff-summary")).to_contain_text(p_better)
    # Choosing the same variant twice: nothing differs.
    page.get_by_test_id("diff-b").select_option("baseline")
    expect(page.locator('[data-testid="diff-row"][data-differs="true"]')).to_have_count(0)
    # A task's runs: the link goes to the API and its runs show in the page.
    link = page.locator('[data-testid="diff-row"][data-task="ppo"]').get_by_test_id(
        "runs-link").first
    expect(link).to_have_attribute(
        "href", "/offline-experiments/ui-offline/variants/baseline/tasks/ppo/runs")
    link.click()
    runs = page.get_by_test_id("task-runs")
    expect(runs).to_have_attribute("data-task", "ppo")
    expect(runs.get_by_test_id("task-run")).to_have_count(made["document"]["repeats"])
    # The description is text, never markup.
    expect(page.get_by_test_id("offline-description")).to_have_text("<b>not markup</b>")
    expect(page.locator("#panel-offline b")).to_have_count(0)


def edges_of(page) -> set[tuple[str, str, str]]:
    return {(e.get_attribute("data-source"), e.get_attribute("data-target"),
             e.get_attribute("data-when"))
            for e in page.locator('#graph-view [data-testid="graph-edge"]').all()}


def test_configs_tab_draws_the_agent_graph_each_user_is_served(page, flags: Path) -> None:
    from playwright.sync_api import expect

    from bootstrap import promote

    page.get_by_test_id("tab-configs").click()
    view = page.get_by_test_id("graph-view")
    page.get_by_test_id("graph-user").select_option("us-free")
    expect(view).to_have_attribute("data-variation", "detector-routed")
    expect(view.get_by_test_id("graph-node")).to_have_count(3)
    assert edges_of(page) == {("supervisor-agent", "security-agent", "flagged"),
                              ("supervisor-agent", "support-agent", "clean"),
                              ("security-agent", "support-agent", "always")}
    # Promote always-security (security-routing promotes to everyone): the drawing follows,
    # without a reload, for the experiment's audience and for every other user.
    assert promote.main(["security-routing", "always-security", "--backend", "local",
                         "--flags-path", str(flags)]) == 0
    page.get_by_test_id("graph-user").select_option("us-paid")
    expect(view).to_have_attribute("data-variation", "always-security")
    expect(view.get_by_test_id("graph-variation")).to_have_text("always-security")
    expect(view.get_by_test_id("graph-problem")).to_have_count(0)
    expect(view).not_to_contain_text("null")
    assert edges_of(page) == {("supervisor-agent", "security-agent", "always"),
                              ("security-agent", "support-agent", "always")}
    page.get_by_test_id("graph-user").select_option("us-free")
    expect(view).to_have_attribute("data-variation", "always-security")
    assert edges_of(page) == {("supervisor-agent", "security-agent", "always"),
                              ("security-agent", "support-agent", "always")}


def test_configs_tab_says_when_a_refused_graph_fell_back(page, flags: Path) -> None:
    """A variation that would skip the security agent: the built-in graph is drawn, and why."""
    import json

    from playwright.sync_api import expect

    page.get_by_test_id("tab-configs").click()
    page.get_by_test_id("graph-user").select_option("us-free")
    view = page.get_by_test_id("graph-view")
    expect(view).to_have_attribute("data-variation", "detector-routed")
    data = json.loads(flags.read_text())
    graph = data["flags"]["support-assistant-graph"]
    graph["variations"].append({
        "_ldMeta": {"enabled": True, "mode": "graph", "variationKey": "<skip-security>",
                    "version": 1},
        "root": "supervisor-agent",
        "edges": {"supervisor-agent": [{"key": "support-agent", "handoff": {"when": "always"}}]}})
    graph["fallthrough"] = {"variation": len(graph["variations"]) - 1}
    graph["version"] += 1
    tmp = flags.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(flags)
    expect(view).to_have_attribute("data-variation", "<skip-security>")
    expect(view.get_by_test_id("graph-problem")).to_contain_text("refused")
    expect(view.get_by_test_id("graph-variation")).to_have_text("<skip-security>")
    assert edges_of(page) == {("supervisor-agent", "security-agent", "flagged"),
                              ("supervisor-agent", "support-agent", "clean"),
                              ("security-agent", "support-agent", "always")}
