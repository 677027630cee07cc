// Web UI of the support assistant: chat, experiments, offline experiments, configs. Plain JS,
// no build, no CDN; offline.js holds the Offline tab and the agent graph drawing.
"use strict";

const CONFIGS_REFRESH_MS = 3000;
const MAX_HISTORY_TURNS = 20; // the API accepts at most this many turns (api/schemas.py)
// Used until GET /configs answers (same users as api/routes/configs.py DEMO_USERS).
const FALLBACK_DEMO_USERS = {
  "us-free": { country: "US", plan: "free" },
  "us-paid": { country: "US", plan: "paid" },
  "eu-free": { country: "DE", plan: "free" },
  "eu-paid": { country: "FR", plan: "paid" },
};
const CONFIG_LABELS = {
  "supervisor-agent": "Supervisor",
  "security-agent": "Security",
  "support-agent": "Support",
};

// --- small helpers -------------------------------------------------------------------------

const $ = (selector, root = document) => root.querySelector(selector);

/** Create an element: el("td", {class: "num", dataset: {testid: "x"}}, "text", child). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name === "text") node.textContent = value;
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svgEl(tag, attrs = {}, ...children) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value !== undefined && value !== null) node.setAttribute(name, value);
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Turn a FastAPI error body into one readable line. */
function describeError(status, body) {
  const detail = body && typeof body === "object" ? body.detail : body;
  if (Array.isArray(detail)) {
    return detail.map((d) => {
      const where = Array.isArray(d.loc) ? d.loc.filter((p) => p !== "body").join(".") : "";
      return where ? `${where}: ${d.msg}` : d.msg || JSON.stringify(d);
    }).join("; ");
  }
  if (detail && typeof detail === "object") {
    return detail.error || detail.message || JSON.stringify(detail);
  }
  return detail ? String(detail) : `HTTP ${status}`;
}

/** fetch + JSON, throwing an Error whose message explains what failed. */
async function api(path, options = {}) {
  const init = { headers: { Accept: "application/json" }, ...options };
  if (options.json !== undefined) {
    init.method = init.method || "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.json);
    delete init.json;
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    throw new Error(`cannot reach the server (${err.message}); is it running?`);
  }
  const text = await response.text();
  let body = text;
  try { body = text ? JSON.parse(text) : null; } catch { /* keep the text */ }
  if (!response.ok) {
    const error = new Error(`${path}: ${describeError(response.status, body)}`);
    error.status = response.status;
    throw error;
  }
  return body;
}

const isNum = (v) => typeof v === "number" && Number.isFinite(v);

function fmtInt(v) { return isNum(v) ? Math.round(v).toLocaleString("en-US") : "—"; }

function fmtUsd(v) {
  if (!isNum(v)) return "unpriced";
  if (v === 0) return "$0";
  return Math.abs(v) < 0.01 ? `$${v.toPrecision(3)}` : `$${v.toFixed(4)}`;
}

function fmtMs(v) {
  if (!isNum(v)) return "—";
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${Math.round(v)} ms`;
}

function fmtPct(v, digits = 1) {
  if (!isNum(v)) return "—";
  const sign = v > 0 ? "+" : "";
  return `${sign}${(v * 100).toFixed(digits)}%`;
}

function fmtProb(v) { return isNum(v) ? `${(v * 100).toFixed(1)}%` : "—"; }

/** A metric value in its unit (units come from utils/telemetry/metrics.py). */
// Expected loss as the report prints it: a rate's is a difference of shares, in points.
function fmtLoss(v, unit) {
  if (isNum(v) && unit === "share of users") return `${(v * 100).toFixed(1)} pp`;
  return fmtMetric(v, unit);
}

function fmtMetric(v, unit) {
  if (!isNum(v)) return "—";
  switch (unit) {
    case "share of users": return `${(v * 100).toFixed(1)}%`;
    case "USD": return fmtUsd(v);
    case "ms": return fmtMs(v);
    case "tokens": return fmtInt(v);
    default: return Number(v.toPrecision(4)).toString();
  }
}

function fmtP(v) {
  if (!isNum(v)) return "—";
  return v < 0.001 ? "< 0.001" : v.toFixed(3);
}

function segmentTitle(label) {
  const [region, plan] = label.split("-");
  if (!plan) return label;
  return `${region.toUpperCase()} ${plan}`;
}

function showError(node, message) {
  node.textContent = message || "";
  node.hidden = !message;
}

function timeNow() { return new Date().toLocaleTimeString(); }

// --- tabs ----------------------------------------------------------------------------------

const TABS = ["chat", "experiments", "offline", "configs"];
const tabActivated = { experiments: () => loadExperiments(), offline: () => loadOffline(),
  configs: () => loadConfigs() };

function selectTab(name, { focus = false } = {}) {
  if (!TABS.includes(name)) name = "chat";
  for (const tab of TABS) {
    const button = $(`#tab-${tab}`);
    const selected = tab === name;
    button.setAttribute("aria-selected", String(selected));
    button.tabIndex = selected ? 0 : -1;
    $(`#panel-${tab}`).hidden = !selected;
    if (selected && focus) button.focus();
  }
  if (location.hash !== `#${name}`) history.replaceState(null, "", `#${name}`);
  if (tabActivated[name]) tabActivated[name]();
  scheduleConfigsRefresh();
}

function currentTab() {
  return TABS.find((t) => $(`#tab-${t}`).getAttribute("aria-selected") === "true");
}

function setUpTabs() {
  for (const tab of TABS) {
    $(`#tab-${tab}`).addEventListener("click", () => selectTab(tab));
  }
  // Arrow keys move between tabs (WAI-ARIA tabs pattern).
  $(".tabs").addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const index = TABS.indexOf(currentTab());
    selectTab(TABS[(index + step + TABS.length) % TABS.length], { focus: true });
    event.preventDefault();
  });
}

// --- health --------------------------------------------------------------------------------

async function loadHealth() {
  const box = $("#health");
  try {
    const health = await api("/health");
    const modes = Object.values(health.llm_mode || {});
    const llm = modes.length && modes.every((m) => m === "simulated") ? "simulated models"
      : modes.every((m) => m === "live") ? "live models" : "mixed models";
    const flags = (health.flags && health.flags.mode) || "?";
    $("#health-text").textContent = `${health.status} · flags: ${flags} · ${llm}`;
    box.className = `health ${health.status}`;
    box.title = [...(health.reasons || []), ...(health.warnings || [])].join("\n")
      || Object.entries(health.llm_mode || {}).map(([p, m]) => `${p}: ${m}`).join(", ");
  } catch (err) {
    $("#health-text").textContent = "server unreachable";
    box.className = "health down";
    box.title = err.message;
  }
}

// --- chat ----------------------------------------------------------------------------------

const chat = { demoUsers: { ...FALLBACK_DEMO_USERS }, history: [], busy: false };

function renderUserOptions() {
  const box = $("#user-options");
  const selected = document.querySelector('input[name="user"]:checked');
  const selectedValue = selected ? selected.value : "us-free";
  box.replaceChildren();
  for (const [label, attrs] of Object.entries(chat.demoUsers)) {
    const id = `user-${label}`;
    const input = el("input", { type: "radio", name: "user", value: label, id,
      dataset: { testid: id } });
    input.checked = label === selectedValue;
    box.append(el("label", { class: "user-option", for: id }, input,
      el("span", {}, el("strong", { text: segmentTitle(label) }),
        el("small", { text: `${attrs.country || "?"} · ${attrs.plan || "?"}` }))));
  }
  if (!document.querySelector('input[name="user"]:checked')) {
    const first = box.querySelector("input") || $("#user-custom");
    first.checked = true;
  }
  applyUserChoice({ reset: false });
}

function chosenUser() {
  const input = document.querySelector('input[name="user"]:checked');
  return input ? input.value : "custom";
}

/** Fill the context fields from the chosen demo user (read-only), or unlock them. */
function applyUserChoice({ reset = true } = {}) {
  const choice = chosenUser();
  const custom = choice === "custom";
  for (const id of ["#ctx-user-id", "#ctx-country", "#ctx-extra"]) $(id).readOnly = !custom;
  $("#ctx-plan").disabled = !custom;
  if (!custom) {
    const attrs = chat.demoUsers[choice] || {};
    const { country = "", plan = "", ...extra } = attrs;
    $("#ctx-user-id").value = `demo-${choice}`;
    $("#ctx-country").value = country;
    $("#ctx-plan").value = plan;
    $("#ctx-extra").value = Object.keys(extra).length ? JSON.stringify(extra) : "";
  } else if (!$("#ctx-user-id").value || $("#ctx-user-id").value.startsWith("demo-")) {
    $("#ctx-user-id").value = `user-${Math.random().toString(36).slice(2, 8)}`;
  }
  showError($("#ctx-error"), "");
  if (reset) resetConversation();
}

/** The request's user id and context, or throws with a message about the bad field. */
function readContext() {
  const userId = $("#ctx-user-id").value.trim();
  if (!userId) throw new Error("User id is empty: enter one or pick a demo user.");
  let extra = {};
  const raw = $("#ctx-extra").value.trim();
  if (raw) {
    try { extra = JSON.parse(raw); } catch (err) {
      throw new Error(`Extra attributes are not valid JSON (${err.message}).`);
    }
    if (!extra || typeof extra !== "object" || Array.isArray(extra)) {
      throw new Error('Extra attributes must be a JSON object, e.g. {"region": "eu-west"}.');
    }
  }
  const context = { ...extra };
  const country = $("#ctx-country").value.trim().toUpperCase();
  const plan = $("#ctx-plan").value;
  if (country) context.country = country;
  if (plan) context.plan = plan;
  return { userId, context };
}

function resetConversation() {
  chat.history = [];
  const list = $("#messages");
  list.replaceChildren(el("li", { class: "empty", id: "messages-empty" },
    `New conversation as ${$("#ctx-user-id").value}. Personal details are redacted before `
    + "the support agent sees them."));
}

function scrollMessages() {
  const list = $("#messages");
  list.scrollTop = list.scrollHeight;
}

function appendUserMessage(text, userId) {
  $("#messages-empty")?.remove();
  const item = el("li", { class: "msg user", dataset: { testid: "user-message" } },
    el("div", { class: "bubble" }, el("div", { class: "who-line", text: userId }), text));
  $("#messages").append(item);
  scrollMessages();
}

function appendPending() {
  const item = el("li", { class: "msg assistant pending", dataset: { testid: "pending" } },
    el("div", { class: "bubble", text: "Supervisor → security → support are working…" }));
  $("#messages").append(item);
  scrollMessages();
  return item;
}

function agentRow(run) {
  const tools = run.tools_used && run.tools_used.length ? run.tools_used.join(", ") : "none";
  return el("tr", { dataset: { testid: `agent-${run.agent}`, agent: run.agent } },
    el("th", { scope: "row", text: run.agent }),
    el("td", {},
      el("span", { dataset: { testid: "variation" }, text: run.variation_key }),
      run.in_experiment ? el("span", { class: "badge warn", title: "in an experiment" },
        " exp") : null,
      el("div", { class: "kv", text: run.config_key })),
    el("td", {}, el("span", { dataset: { testid: "model" }, text: run.model }),
      el("div", { class: "kv" }, run.provider, run.simulated ? " · simulated" : "")),
    el("td", { dataset: { testid: "tools-used" } }, tools,
      run.sources && run.sources.length
        ? el("div", { class: "kv", text: `sources: ${run.sources.join(", ")}` }) : null),
    el("td", { class: "num", text: `${fmtInt(run.input_tokens)} / ${fmtInt(run.output_tokens)}` }),
    el("td", { class: "num", text: fmtUsd(run.cost_usd) }),
    el("td", { class: "num", text: fmtMs(run.duration_ms) }));
}

function renderAssistant(result, userId) {
  const node = $("#assistant-template").content.firstElementChild.cloneNode(true);
  node.dataset.requestId = result.request_id;
  const route = $('[data-testid="route-badge"]', node);
  route.textContent = `route: ${result.route}`;
  route.title = result.route === "security"
    ? "PII suspected: the security agent redacted the message before support saw it"
    : "No PII suspected: the message went straight to support";
  $('[data-testid="simulated-badge"]', node).hidden = !result.simulated;
  $('[data-testid="refused-badge"]', node).hidden = !result.refused;
  const text = $('[data-testid="answer-text"]', node);
  text.textContent = result.response;

  const security = (result.agents || []).find((a) => a.agent === "security");
  if (security && (security.redacted_text || (security.pii_types || []).length)) {
    const types = security.pii_types || [];
    $('[data-testid="pii-types"]', node).replaceChildren(
      ...(types.length ? types.map((t) => el("span", { class: "chip", text: t }))
        : [el("span", { class: "muted", text: "nothing found" })]));
    $('[data-testid="redacted-text"]', node).textContent = security.redacted_text || "";
    $('[data-testid="redactions"]', node).hidden = false;
  }

  const totals = result.totals || {};
  $('[data-testid="totals"]', node).textContent = `${(result.agents || []).length} agent runs · `
    + `${fmtInt(totals.total_tokens)} tokens · ${fmtUsd(totals.cost_usd)} · `
    + `${fmtMs(totals.duration_ms)}`;
  $('[data-testid="agent-runs"] tbody', node).append(...(result.agents || []).map(agentRow));

  // Long answers start folded so the route, redactions and agent runs stay in view.
  requestAnimationFrame(() => {
    text.classList.add("clamped");
    if (text.scrollHeight <= text.clientHeight + 4) {
      text.classList.remove("clamped");
      return;
    }
    const toggle = el("button", { type: "button", class: "link", "aria-expanded": "false",
      dataset: { testid: "expand-answer" }, text: "Show the whole answer" });
    toggle.addEventListener("click", () => {
      const folded = text.classList.toggle("clamped");
      toggle.setAttribute("aria-expanded", String(!folded));
      toggle.textContent = folded ? "Show the whole answer" : "Fold the answer";
    });
    text.after(toggle);
  });

  for (const button of node.querySelectorAll(".thumb")) {
    button.setAttribute("aria-pressed", "false");
    button.addEventListener("click", () => sendFeedback(node, button, userId));
  }
  return node;
}

async function sendFeedback(node, button, userId) {
  const status = $('[data-testid="feedback-status"]', node);
  const kind = button.dataset.kind;
  status.className = "feedback-status";
  status.textContent = "sending…";
  try {
    const result = await api("/feedback", { json: {
      request_id: node.dataset.requestId, user_id: userId, kind, source: "real_user" } });
    if (result.status === "recorded") {
      button.setAttribute("aria-pressed", "true");
      status.textContent = `${kind === "positive" ? "Thanks! Positive" : "Negative"} feedback recorded`;
      status.classList.add("recorded");
    } else {
      status.textContent = "Already recorded for this answer (duplicate ignored)";
    }
    status.dataset.status = result.status;
  } catch (err) {
    status.textContent = `Feedback failed: ${err.message}`;
    status.dataset.status = "error";
  }
}

async function sendMessage(event) {
  event.preventDefault();
  if (chat.busy) return;
  const input = $("#message-input");
  const message = input.value;
  showError($("#chat-error"), "");
  if (!message.trim()) return;
  let who;
  try {
    who = readContext();
    showError($("#ctx-error"), "");
  } catch (err) {
    showError($("#ctx-error"), err.message);
    return;
  }
  chat.busy = true;
  $("#send-button").disabled = true;
  appendUserMessage(message, who.userId);
  input.value = "";
  const pending = appendPending();
  try {
    const result = await api("/chat", { json: {
      user_id: who.userId, message, user_context: who.context,
      history: chat.history.slice(-MAX_HISTORY_TURNS) } });
    pending.replaceWith(renderAssistant(result, who.userId));
    chat.history.push({ role: "user", content: message },
      { role: "assistant", content: result.response });
  } catch (err) {
    pending.remove();
    showError($("#chat-error"), `The message was not answered: ${err.message}`);
    input.value = message; // let the user retry without retyping
  } finally {
    chat.busy = false;
    $("#send-button").disabled = false;
    scrollMessages();
    input.focus();
  }
}

function setUpChat() {
  $("#user-picker").addEventListener("change", () => applyUserChoice());
  $("#chat-form").addEventListener("submit", sendMessage);
  $("#message-input").addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      $("#chat-form").requestSubmit();
      event.preventDefault();
    }
  });
  renderUserOptions();
  resetConversation();
}

// --- experiments ---------------------------------------------------------------------------

const OUTCOME_CLASS = { SHIP: "good", KEEP: "neutral", NEED_MORE_DATA: "warn", INVALID: "bad" };

function listOf(body) {
  if (Array.isArray(body)) return body;
  if (body && Array.isArray(body.experiments)) return body.experiments;
  return [];
}

/** A metric's relative interval: from posterior draws (never below -100%), else delta method. */
function intervalOf(m) {
  return "interval_low" in m ? [m.interval_low, m.interval_high] : [m.ci_low, m.ci_high];
}

/** Forest plot: relative change of each metric with its credible interval. */
function forestChart(metrics) {
  const rows = metrics.filter((m) => isNum(m.relative_difference));
  if (!rows.length) return null;
  const values = rows.flatMap((m) => [m.relative_difference, ...intervalOf(m)]).filter(isNum);
  // One outlier (a +600% cost) must not squash the others: clip the axis at ±100%.
  const bound = Math.min(Math.max(0.05, ...values.map(Math.abs)) * 1.1, 1);
  const width = 640; const left = 190; const right = 70; const rowH = 26; const top = 22;
  const height = top + rows.length * rowH + 10;
  const x = (v) => left + ((Math.max(-bound, Math.min(bound, v)) + bound) / (2 * bound))
    * (width - left - right);
  const parts = [
    svgEl("line", { x1: x(0), x2: x(0), y1: top - 6, y2: height - 4, stroke: "#8a93a6",
      "stroke-dasharray": "3 3" }),
    svgEl("text", { x: x(-bound), y: 12, "font-size": 11, fill: "#5b6475" }, fmtPct(-bound, 0)),
    svgEl("text", { x: x(0), y: 12, "font-size": 11, fill: "#5b6475", "text-anchor": "middle" },
      "0"),
    svgEl("text", { x: x(bound), y: 12, "font-size": 11, fill: "#5b6475", "text-anchor": "end" },
      fmtPct(bound, 0)),
  ];
  rows.forEach((m, i) => {
    const y = top + i * rowH + rowH / 2;
    const good = m.higher_is_better === false ? m.relative_difference < 0
      : m.relative_difference > 0;
    const colour = good ? "#137a3a" : "#b42318";
    parts.push(svgEl("text", { x: 0, y: y + 4, "font-size": 12, fill: "#1d2330" }, m.key));
    const [lo, hi] = intervalOf(m);
    if (isNum(lo) && isNum(hi)) {
      parts.push(svgEl("line", { x1: x(lo), x2: x(hi), y1: y, y2: y,
        stroke: colour, "stroke-width": 3, "stroke-linecap": "round", opacity: 0.55 }));
    }
    const tip = svgEl("title", {}, `${m.key}: ${fmtPct(m.relative_difference)} `
      + `[${fmtPct(lo)}, ${fmtPct(hi)}]`);
    const cx = x(m.relative_difference);
    if (Math.abs(m.relative_difference) > bound) { // off the axis: an arrow at the edge
      const d = m.relative_difference > 0 ? 1 : -1;
      parts.push(svgEl("path", { d: `M${cx + 7 * d},${y} L${cx - 3 * d},${y - 6} `
        + `L${cx - 3 * d},${y + 6} Z`, fill: colour }, tip));
    } else {
      parts.push(svgEl("circle", { cx, cy: y, r: 5, fill: colour }, tip));
    }
    parts.push(svgEl("text", { x: width - 2, y: y + 4, "font-size": 11, fill: colour,
      "text-anchor": "end" }, fmtPct(m.relative_difference)));
  });
  return el("figure", { class: "chart", dataset: { testid: "forest-chart" } },
    el("figcaption", {}, "Treatment vs control: relative change with its credible interval "
      + "(green = the metric's good direction)"),
    svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "Relative change of each metric, treatment against control" }, parts));
}

/** Cumulative users per arm over time (the report's timeline). */
function timelineChart(timeline, arms) {
  if (!Array.isArray(timeline) || timeline.length < 2) return null;
  const width = 640; const height = 150; const left = 40; const bottom = 22; const top = 8;
  const max = Math.max(1, ...timeline.flatMap((p) => arms.map((a) => p[a] || 0)));
  const x = (i) => left + (i / (timeline.length - 1)) * (width - left - 10);
  const y = (v) => top + (1 - v / max) * (height - top - bottom);
  const colours = ["#2f5bea", "#d97706"];
  const parts = [
    svgEl("line", { x1: left, x2: width - 10, y1: y(0), y2: y(0), stroke: "#dde1e8" }),
    svgEl("text", { x: left - 4, y: y(max) + 4, "font-size": 11, fill: "#5b6475",
      "text-anchor": "end" }, fmtInt(max)),
    svgEl("text", { x: left - 4, y: y(0), "font-size": 11, fill: "#5b6475",
      "text-anchor": "end" }, "0"),
  ];
  arms.forEach((arm, k) => {
    const points = timeline.map((p, i) => `${x(i).toFixed(1)},${y(p[arm] || 0).toFixed(1)}`);
    parts.push(svgEl("polyline", { points: points.join(" "), fill: "none",
      stroke: colours[k], "stroke-width": 2 }));
    parts.push(svgEl("text", { x: left + 8 + k * 200, y: height - 4, "font-size": 11,
      fill: colours[k] }, `— ${arm}`));
  });
  return el("figure", { class: "chart", dataset: { testid: "timeline-chart" } },
    el("figcaption", {}, "Users enrolled per arm over time"),
    svgEl("svg", { viewBox: `0 0 ${width} ${height}`, role: "img",
      "aria-label": "Cumulative users per arm over time" }, parts));
}

function metricTable(results) {
  const metrics = results.metrics || [];
  if (!metrics.length) return el("p", { class: "muted", text: "No metrics yet." });
  const head = el("tr", {}, ["Metric", "Control", "Treatment", "Change", "Credible interval",
    "P(beat control)", "Expected loss"].map((h, i) =>
    el("th", { scope: "col", class: i ? "num" : undefined, text: h })));
  const rows = metrics.map((m) => el("tr", { dataset: { metric: m.key } },
    el("th", { scope: "row", title: m.key }, m.name || m.key,
      m.key === results.primary_metric ? el("span", { class: "badge neutral" }, " primary")
        : null,
      m.reason ? el("div", { class: "kv", text: m.reason }) : null),
    el("td", { class: "num", text: fmtMetric(m.control_value, m.unit) }),
    el("td", { class: "num", text: fmtMetric(m.treatment_value, m.unit) }),
    el("td", { class: "num", text: fmtPct(m.relative_difference) }),
    el("td", { class: "num", text: intervalOf(m).some(isNum)
      ? `${fmtPct(intervalOf(m)[0])} … ${fmtPct(intervalOf(m)[1])}` : "—" }),
    el("td", { class: "num", text: fmtProb(m.probability_to_beat_control) }),
    el("td", { class: "num", text: fmtLoss(m.expected_loss, m.unit) })));
  return el("div", { class: "table-wrap" }, el("table", { class: "grid",
    dataset: { testid: "metric-table" } }, el("thead", {}, head), el("tbody", {}, rows)));
}

// Which agent moved it: each summed metric's per-user mean, agent by agent.
function agentSplitTable(splits, control, treatment) {
  if (!Array.isArray(splits) || !splits.length) return null;
  const num = (v) => (isNum(v) ? (Math.abs(v) < 1 ? v.toPrecision(3) : v.toFixed(1)) : "—");
  const signed = (v) => (isNum(v) && v >= 0 ? "+" : "") + num(v);
  const rows = [];
  for (const s of splits) {
    rows.push(el("tr", {}, el("th", { colspan: "4",
      text: `${s.metric}: ${s.of_mean ? "per-user mean total" : "per-user mean"} by agent` })));
    for (const a of s.agents || []) {
      rows.push(el("tr", {}, el("td", { text: a.agent }), el("td", { text: num(a.control) }),
        el("td", { text: num(a.treatment) }), el("td", { text: signed(a.difference) })));
    }
  }
  return el("table", { class: "criteria", dataset: { testid: "agent-split" } },
    el("caption", { text: "Which agent moved it" }),
    el("tr", {}, el("th", { text: "agent" }), el("th", { text: control || "control" }),
      el("th", { text: treatment || "treatment" }), el("th", { text: "difference" })),
    rows);
}

function criteriaTable(criteria) {
  if (!Array.isArray(criteria) || !criteria.length) return null;
  // The sentence comes from the verdict engine (one wording for every view); the
  // statistician's form of the criterion stays beside it.
  const rows = criteria.map((c) => el("tr", {},
    el("td", {}, c.in_words || c.description || c.metric || c.kind,
      el("div", { class: "kv", text: [`${c.metric}: ${c.description || c.kind}`, c.detail]
        .filter(Boolean).join("; ") })),
    el("td", { class: c.passed ? "pass" : "fail", text: c.passed ? "pass" : "not yet" })));
  return el("div", { class: "table-wrap" }, el("table", { class: "grid small",
    dataset: { testid: "criteria-table" } },
  el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Ship criterion" }),
    el("th", { scope: "col", text: "Result" }))),
  el("tbody", {}, rows)));
}

function reportEmbed(key) {
  const url = `/experiments/${encodeURIComponent(key)}/report`;
  const details = el("details", { class: "report" },
    el("summary", { text: "Show the full report with its charts here" }));
  details.addEventListener("toggle", () => {
    if (details.open && !details.querySelector("iframe")) {
      details.append(el("iframe", { class: "report-frame", src: url, loading: "lazy",
        title: `HTML report of ${key}`, dataset: { testid: "report-frame" } }));
    }
  });
  return details;
}

/** The one experiment in a /results body (the report schema wraps it in `experiments`). */
function unwrapResults(body, key) {
  if (body && Array.isArray(body.experiments)) {
    const found = body.experiments.find((e) => e && e.key === key) || body.experiments[0];
    return found ? { ...found, notes: body.notes, simulated: body.simulated } : null;
  }
  return body && typeof body === "object" ? body : null;
}

/** Running when the config's targeting splits traffic between the experiment's two arms. */
function statusFromConfigs(configs, data) {
  const flag = (configs?.flags || []).find((f) => f.key === data.config);
  if (!flag || !data.control || !data.treatment) return null;
  for (const rule of flag.targeting || []) {
    const split = rule.serve && typeof rule.serve === "object" ? rule.serve.split : null;
    if (split && data.control in split && data.treatment in split) {
      return rule.serve.rollout === "experiment" ? "running" : "rolling out";
    }
  }
  return "not running";
}

// "interim · 480 of 963 per arm (50%)": a verdict before the horizon is provisional.
function lookText(m) {
  if (m.look === "single" || !isNum(m.horizon_per_arm)) return "single look";
  const of = `${fmtInt(m.users_per_arm)} of ${fmtInt(m.horizon_per_arm)} per arm`;
  const pct = isNum(m.progress) ? ` (${Math.round(m.progress * 100)}%)` : "";
  return `${m.look} · ${of}${pct}`;
}

function experimentCard(item, results, error, configs) {
  const key = item.key || results?.key;
  const data = { ...item, ...(results || {}) };
  const verdict = data.verdict || { outcome: item.outcome, variation: item.variation,
    summary: item.summary };
  const outcome = verdict.outcome || item.outcome;
  const status = item.status || data.status || statusFromConfigs(configs, data);
  const reportUrl = `/experiments/${encodeURIComponent(key)}/report`;

  const users = data.users && typeof data.users === "object" ? data.users : {};
  const arms = [data.control, data.treatment].filter(Boolean);
  const armNames = arms.length ? arms : Object.keys(users);
  const facts = el("dl", { class: "facts", dataset: { testid: "users-per-arm" } },
    armNames.map((arm, i) => el("div", {},
      el("dt", { text: `${i === 0 && arms.length ? "control" : "treatment"} · ${arm}` }),
      el("dd", { text: `${fmtInt(users[arm])} users` }))),
    el("div", {}, el("dt", { text: "SRM p-value" }), el("dd", { text: fmtP(data.srm_p_value) })),
    data.monitoring ? el("div", { dataset: { testid: "look" }, title: data.monitoring.label },
      el("dt", { text: "Look" }),
      el("dd", { text: lookText(data.monitoring) })) : null,
    data.users_needed && isNum(data.users_needed.per_arm)
      ? el("div", {}, el("dt", { text: "Users needed per arm" }),
        el("dd", { text: fmtInt(data.users_needed.per_arm) })) : null,
    data.users_needed && isNum(data.users_needed.additional)
      ? el("div", {}, el("dt", { text: "More users to go" }),
        el("dd", { text: fmtInt(data.users_needed.additional) })) : null);

  const summary = verdict.summary || item.summary || item.verdict_summary;
  return el("article", { class: "card", dataset: { testid: "experiment-card", key } },
    el("div", { class: "card-head" },
      el("h3", {}, data.name || key, " ", el("code", { class: "kv", text: key })),
      el("div", {},
        data.simulated ? el("span", { class: "badge sim", title: "the events came from "
          + "simulated providers: the mechanics are real, the numbers are not evidence",
        text: "simulated data" }) : null, " ",
        status ? el("span", { class: "badge neutral", dataset: { testid: "experiment-status" },
          text: typeof status === "string" ? status : JSON.stringify(status) }) : null, " ",
        outcome ? el("span", { class: `badge ${OUTCOME_CLASS[outcome] || "neutral"}`,
          dataset: { testid: "verdict-outcome" },
          text: outcome + (verdict.variation ? `: ${verdict.variation}` : "") }) : null)),
    el("p", { class: "sub" },
      data.config ? `config ${data.config}` : "",
      arms.length === 2 ? ` · ${arms[0]} (control) vs ${arms[1]} (treatment)` : "",
      data.hypothesis ? el("span", {}, el("br"), data.hypothesis) : null),
    facts,
    verdict.headline ? el("p", { class: "headline", dataset: { testid: "headline" } },
      el("strong", { text: verdict.headline })) : null,
    summary ? el("div", { class: `verdict ${outcome || ""}`, dataset: { testid: "verdict" } },
      el("strong", { text: "Verdict: " }), summary) : null,
    error ? el("p", { class: "error", role: "alert", text: error }) : null,
    (data.notes || []).map((n) => el("p", { class: "hint", text: n })),
    results ? criteriaTable(results.criteria) : null,
    results ? agentSplitTable(results.agent_split, data.control, data.treatment) : null,
    results ? metricTable(results) : null,
    results ? el("div", { class: "charts" }, forestChart(results.metrics || []),
      timelineChart(results.timeline, armNames)) : null,
    el("p", {}, el("a", { href: reportUrl, target: "_blank", rel: "noopener",
      dataset: { testid: "report-link" } }, "Open the HTML report ↗")),
    reportEmbed(key));
}

let experimentsLoading = false;

async function loadExperiments() {
  if (experimentsLoading) return;
  experimentsLoading = true;
  const button = $("#experiments-refresh");
  button.disabled = true;
  showError($("#experiments-error"), "");
  try {
    // The configs say whether each experiment's split is being served (its status).
    const [listed, configs] = await Promise.all([api("/experiments"),
      api("/configs").catch(() => null)]);
    const items = listOf(listed);
    const cards = await Promise.all(items.map(async (item) => {
      if (!item || !item.key) return null;
      try {
        const body = await api(`/experiments/${encodeURIComponent(item.key)}/results`);
        return experimentCard(item, unwrapResults(body, item.key), null, configs);
      } catch (err) {
        return experimentCard(item, null, `Results unavailable: ${err.message}`, configs);
      }
    }));
    const list = $("#experiments-list");
    const shown = cards.filter(Boolean);
    list.replaceChildren(...(shown.length ? shown
      : [el("p", { class: "muted", text: "No experiments defined." })]));
    $("#experiments-updated").textContent = `updated ${timeNow()}`;
  } catch (err) {
    showError($("#experiments-error"), `Could not load experiments: ${err.message}`);
  } finally {
    experimentsLoading = false;
    button.disabled = false;
  }
}

// --- configs -------------------------------------------------------------------------------

let previousServed = null;
let configsTimer = null;
let configsLoading = false;

function servedCell(entry, configKey) {
  if (!entry) return el("td", { text: "—", dataset: { config: configKey } });
  return el("td", { dataset: { testid: "served-cell", config: configKey,
    inExperiment: String(Boolean(entry.in_experiment)) } },
    el("strong", { text: entry.variation || "(none)" }),
    entry.in_experiment ? el("span", { class: "badge warn", title: "bucketed by an experiment" },
      " exp") : null,
    el("div", { class: "kv" }, entry.model || "",
      entry.source && entry.source !== "flags" ? ` · ${entry.source}` : ""));
}

function renderServed(body) {
  const served = body.served || {};
  const demoUsers = body.demo_users || {};
  const keys = [...new Set(Object.values(served).flatMap((s) => Object.keys(s || {})))];
  const table = $("#served-table");
  table.tHead.replaceChildren(el("tr", {}, el("th", { scope: "col", text: "Demo user" }),
    keys.map((k) => el("th", { scope: "col", text: CONFIG_LABELS[k] || k }))));
  const rows = Object.entries(served).map(([label, configs]) => {
    const attrs = demoUsers[label] || {};
    const row = el("tr", { dataset: { user: label } },
      el("th", { scope: "row" }, segmentTitle(label),
        el("div", { class: "kv", text: `demo-${label} · ${attrs.country || "?"}, `
          + `${attrs.plan || "?"}` })),
      keys.map((k) => {
        const cell = servedCell(configs?.[k], k);
        const before = previousServed?.[label]?.[k];
        // Highlight what changed since the previous poll, so a hot change is visible.
        if (before && JSON.stringify(before) !== JSON.stringify(configs?.[k])) {
          cell.classList.add("flash");
        }
        return cell;
      }));
    return row;
  });
  table.tBodies[0].replaceChildren(...rows);
  previousServed = served;
}

function describeServe(serve) {
  if (typeof serve === "string") return serve;
  if (serve && typeof serve === "object" && serve.split) {
    const parts = Object.entries(serve.split).map(([k, w]) => `${k} ${Math.round(w)}%`);
    return `${serve.rollout === "experiment" ? "experiment" : "rollout"}: ${parts.join(" / ")}`;
  }
  return JSON.stringify(serve);
}

function compactJson(obj) {
  if (!obj || typeof obj !== "object" || !Object.keys(obj).length) return "—";
  return Object.entries(obj).map(([k, v]) => `${k}=${typeof v === "object"
    ? JSON.stringify(v) : v}`).join(", ");
}

function flagCard(flag) {
  const head = el("tr", {}, ["Variation", "Model", "Provider", "Tools", "Parameters",
    "Custom"].map((h) => el("th", { scope: "col", text: h })));
  const rows = (flag.variations || []).map((v) => el("tr", { dataset: { variation: v.key } },
    el("th", { scope: "row", text: v.malformed ? "(malformed value)" : v.key }),
    el("td", { text: v.model || "—" }),
    el("td", { text: v.provider || "—" }),
    el("td", { text: (v.tools || []).join(", ") || "none" }),
    el("td", { class: "kv", text: compactJson(v.parameters) }),
    el("td", { class: "kv", text: compactJson(v.custom) })));
  const targeting = el("ul", { class: "targeting", dataset: { testid: "targeting" } },
    (flag.targeting || []).map((t) => el("li", {},
      el("strong", { text: (t.segments || []).join(", ") || "(rule)" }), " → ",
      describeServe(t.serve))));
  return el("article", { class: "card", dataset: { testid: "flag-card", key: flag.key } },
    el("div", { class: "card-head" },
      el("h3", {}, CONFIG_LABELS[flag.key] || flag.key, " ",
        el("code", { class: "kv", text: flag.key })),
      el("span", { class: `badge ${flag.on === false ? "bad" : "good"}`,
        text: flag.on === false ? "off" : "on" })),
    el("div", { class: "table-wrap" }, el("table", { class: "grid small",
      dataset: { testid: "variations-table" } }, el("thead", {}, head), el("tbody", {}, rows))),
    el("p", { class: "sub", text: "Targeting (first match wins):" }),
    targeting);
}

async function loadConfigs() {
  if (configsLoading) return;
  configsLoading = true;
  try {
    const body = await api("/configs");
    showError($("#configs-error"), "");
    if (body.demo_users && Object.keys(body.demo_users).length
        && JSON.stringify(body.demo_users) !== JSON.stringify(chat.demoUsers)) {
      chat.demoUsers = body.demo_users;
      renderUserOptions();
    }
    renderServed(body);
    renderGraph(body);
    const flags = body.flags || [];
    $("#flags-list").replaceChildren(...(flags.length ? flags.map(flagCard)
      : [el("p", { class: "muted", text: `No flag file is being served (mode ${body.mode}); `
        + "every agent runs its built-in default. Run python -m bootstrap.create_configs." })]));
    $("#configs-updated").textContent = `flags: ${body.mode || "?"} · updated ${timeNow()}`;
  } catch (err) {
    showError($("#configs-error"), `Could not load configs: ${err.message}`);
  } finally {
    configsLoading = false;
  }
}

/** Poll /configs while the Configs tab is open and auto-refresh is on. */
function scheduleConfigsRefresh() {
  clearInterval(configsTimer);
  configsTimer = null;
  if (currentTab() === "configs" && $("#configs-auto").checked) {
    configsTimer = setInterval(() => {
      if (!document.hidden) loadConfigs();
    }, CONFIGS_REFRESH_MS);
  }
}

// --- start ---------------------------------------------------------------------------------

function start() {
  setUpTabs();
  setUpChat();
  setUpOffline();
  $("#graph-user").addEventListener("change", loadConfigs);
  $("#experiments-refresh").addEventListener("click", loadExperiments);
  $("#configs-refresh").addEventListener("click", loadConfigs);
  $("#configs-auto").addEventListener("change", scheduleConfigsRefresh);
  window.addEventListener("hashchange", () => selectTab(location.hash.slice(1)));
  loadHealth();
  loadConfigs(); // also brings the demo users for the picker
  selectTab(location.hash.slice(1) || "chat");
}

document.addEventListener("DOMContentLoaded", start);
