// Offline tab and the Configs tab's agent graph. Loaded before app.js, whose helpers ($, el,
// svgEl, api, fmt*) it uses once the page has loaded. Every figure shown comes from the server.
"use strict";

// --- the agent graph a user is served (Configs tab) ----------------------------------------

const GRAPH_BOX = { w: 150, h: 44, gapX: 90, gapY: 28, pad: 16 };

/** Depth of each node: the longest edge path from the root (the served graphs are acyclic). */
function graphDepths(graph) {
  const depth = { [graph.root]: 0 };
  const nodes = graph.nodes || [graph.root];
  for (let pass = 0; pass < nodes.length; pass += 1) {
    for (const [source, targets] of Object.entries(graph.edges || {})) {
      for (const edge of targets || []) {
        if (source in depth && (depth[edge.key] ?? -1) < depth[source] + 1) {
          depth[edge.key] = depth[source] + 1;
        }
      }
    }
  }
  return depth;
}

function graphSvg(graph) {
  const depth = graphDepths(graph);
  const columns = {};
  for (const node of graph.nodes || [graph.root]) {
    const d = depth[node] ?? 0;
    (columns[d] = columns[d] || []).push(node);
  }
  const rows = Math.max(...Object.values(columns).map((c) => c.length));
  const place = {};
  for (const [d, nodes] of Object.entries(columns)) {
    nodes.forEach((node, i) => {
      const offset = ((rows - nodes.length) * (GRAPH_BOX.h + GRAPH_BOX.gapY)) / 2;
      place[node] = { x: GRAPH_BOX.pad + Number(d) * (GRAPH_BOX.w + GRAPH_BOX.gapX),
        y: GRAPH_BOX.pad + 18 + offset + i * (GRAPH_BOX.h + GRAPH_BOX.gapY) };
    });
  }
  const depthCount = Object.keys(columns).length;
  const width = GRAPH_BOX.pad * 2 + depthCount * GRAPH_BOX.w + (depthCount - 1) * GRAPH_BOX.gapX;
  const height = GRAPH_BOX.pad * 2 + 18 + rows * GRAPH_BOX.h + (rows - 1) * GRAPH_BOX.gapY;
  const edges = [];
  for (const [source, targets] of Object.entries(graph.edges || {})) {
    for (const edge of targets || []) {
      const a = place[source];
      const b = place[edge.key];
      if (!a || !b) continue;
      const when = (edge.handoff && edge.handoff.when) || "always";
      let x1 = a.x + GRAPH_BOX.w; let y1 = a.y + GRAPH_BOX.h / 2;
      let x2 = b.x; let y2 = b.y + GRAPH_BOX.h / 2;
      if (b.x <= a.x) { x1 = a.x + GRAPH_BOX.w / 2; y1 = a.y + GRAPH_BOX.h; x2 = b.x + GRAPH_BOX.w / 2; y2 = b.y; }
      const skip = (depth[edge.key] ?? 0) - (depth[source] ?? 0) > 1;
      const bend = skip ? -GRAPH_BOX.h : 0; // an edge over a column arcs above it
      const mx = (x1 + x2) / 2; const my = (y1 + y2) / 2 + bend;
      edges.push(svgEl("g", { class: `graph-edge when-${when}`, "data-testid": "graph-edge",
        "data-source": source, "data-target": edge.key, "data-when": when },
      svgEl("path", { d: `M${x1},${y1} Q${mx},${my + bend} ${x2},${y2}`,
        "marker-end": "url(#graph-arrow)" }),
      svgEl("text", { x: mx, y: my + (skip ? 0 : -6), "text-anchor": "middle" }, when)));
    }
  }
  const nodes = Object.entries(place).map(([key, p]) => svgEl("g", { class: "graph-node",
    "data-testid": "graph-node", "data-key": key },
  svgEl("rect", { x: p.x, y: p.y, width: GRAPH_BOX.w, height: GRAPH_BOX.h, rx: 8 }),
  svgEl("text", { x: p.x + GRAPH_BOX.w / 2, y: p.y + 19, "text-anchor": "middle",
    class: "name" }, CONFIG_LABELS[key] || key),
  svgEl("text", { x: p.x + GRAPH_BOX.w / 2, y: p.y + 35, "text-anchor": "middle",
    class: "key" }, key)));
  return svgEl("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
    "aria-label": `agent graph ${graph.variation}` },
  svgEl("defs", {}, svgEl("marker", { id: "graph-arrow", viewBox: "0 0 10 10", refX: 10,
    refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
  svgEl("path", { d: "M0,0 L10,5 L0,10 z" }))), edges, nodes);
}

/** The graph served to the demo user chosen in #graph-user, from GET /configs `graphs`. */
function renderGraph(body) {
  const graphs = body.graphs || {};
  const select = $("#graph-user");
  const labels = Object.keys(graphs);
  if ([...select.options].map((o) => o.value).join() !== labels.join()) {
    const keep = select.value;
    select.replaceChildren(...labels.map((l) => el("option", { value: l,
      text: `${segmentTitle(l)} (demo-${l})` })));
    if (labels.includes(keep)) select.value = keep;
  }
  const view = $("#graph-view");
  const graph = graphs[select.value];
  if (!graph) {
    view.replaceChildren(el("p", { class: "muted", text: "No graph served." }));
    return;
  }
  view.dataset.variation = graph.variation;
  view.replaceChildren(...[
    el("p", { class: "sub" }, el("code", { text: graph.config || "" }), " serves ",
      el("strong", { dataset: { testid: "graph-variation" }, text: graph.variation }),
      graph.in_experiment ? el("span", { class: "badge warn" }, " exp") : null,
      ` to demo-${select.value}`),
    graph.fell_back ? el("p", { class: "error", dataset: { testid: "graph-problem" },
      text: `${graph.problem || "refused"}: running the built-in detector-routed graph` }) : null,
    el("div", { class: "graph-wrap" }, graphSvg(graph))].filter(Boolean));
}

// --- Offline tab -----------------------------------------------------------------------------

const offline = { key: null, document: null };

function passRate(v) { return isNum(v) ? fmtProb(v) : "—"; }

function variantLine(variant) {
  const c = variant.comparison;
  const change = Object.entries(variant.override || {}).map(([k, v]) => `${k}=${
    typeof v === "object" ? JSON.stringify(v) : v}`).join(", ");
  return el("div", { class: "variant-line" },
    el("strong", { text: variant.name }),
    variant.step ? el("span", { class: "kv", text: ` ${variant.step}: ${change}` }) : null,
    el("span", { class: "badge neutral", dataset: { testid: "variant-status" },
      text: variant.status }),
    el("span", { dataset: { testid: "pass-rate" }, text: `pass ${passRate(variant.pass_rate)}` }),
    c ? el("span", { dataset: { testid: "vs-parent" },
      class: c.difference > 0 ? "pass" : c.difference < 0 ? "fail" : "" },
    `Δ vs ${c.against} ${fmtPct(c.difference)} · P(better) ${fmtProb(c.p_better)}`) : null);
}

function variantTree(variants) {
  const children = {};
  for (const v of variants) (children[v.parent || ""] = children[v.parent || ""] || []).push(v);
  const branch = (parent) => {
    const kids = children[parent] || [];
    return kids.length ? el("ul", { class: "tree" }, kids.map((v) => el("li", {
      dataset: { testid: "variant-node", name: v.name, parent: v.parent || "" } },
    variantLine(v), branch(v.name)))) : null;
  };
  return branch("");
}

function runsLink(key, variant, task) {
  const href = `/offline-experiments/${encodeURIComponent(key)}/variants/`
    + `${encodeURIComponent(variant)}/tasks/${encodeURIComponent(task)}/runs`;
  const link = el("a", { href, dataset: { testid: "runs-link" }, text: "runs" });
  link.addEventListener("click", async (event) => {
    event.preventDefault();
    const box = $("#offline-runs");
    try {
      const body = await api(href);
      box.replaceChildren(el("h4", { text: `${variant} · task ${task}` }),
        el("table", { class: "grid small" }, el("thead", {}, el("tr", {},
          ["Repeat", "Passed", "Request id", "Route", "Tools", "Cost", "Latency", "Checks"]
            .map((h) => el("th", { scope: "col", text: h })))),
        el("tbody", {}, body.runs.map((r) => el("tr", { dataset: { testid: "task-run" } },
          el("td", { text: r.repeat }), el("td", { class: r.passed ? "pass" : "fail",
            text: r.passed ? "pass" : "fail" }),
          el("td", { class: "kv", text: r.request_id || "—" }), el("td", { text: r.route || "—" }),
          el("td", { text: (r.tools_used || []).join(", ") || "none" }),
          el("td", { class: "num", text: fmtUsd(r.cost_usd) }),
          el("td", { class: "num", text: fmtMs(r.latency_ms) }),
          el("td", { class: "kv", text: (r.checks || []).map((c) => `${c.kind}: ${
            c.passed ? "pass" : "fail"}${c.detail ? ` (${c.detail})` : ""}`).join("; ")
            + (r.error ? ` · error: ${r.error}` : "") }))))),
        el("p", {}, el("a", { href, target: "_blank", rel: "noopener", text: "as JSON ↗" })));
      box.dataset.task = task;
      box.dataset.variant = variant;
    } catch (err) {
      box.replaceChildren(el("p", { class: "error", text: err.message }));
    }
  });
  return link;
}

async function loadDiff() {
  const a = $("#diff-a").value;
  const b = $("#diff-b").value;
  const box = $("#offline-diff");
  if (!offline.key || !a || !b) return;
  try {
    const key = offline.key;
    const diff = await api(`/offline-experiments/${encodeURIComponent(key)}/diff?a=`
      + `${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
    const c = diff.comparison;
    const count = (n) => (n === null || n === undefined ? "not run" : `${n} / ${diff.repeats}`);
    box.replaceChildren(
      el("p", { class: "sub", dataset: { testid: "diff-summary" } }, c
        ? `${b} vs ${a}: ${fmtPct(c.difference)} pass rate · P(better) ${fmtProb(c.p_better)}`
          + ` · 95% CI ${fmtPct(c.ci[0])} to ${fmtPct(c.ci[1])} · ${c.pairs} pairs`
        : `${b} vs ${a}: no comparison until both have run`),
      el("table", { class: "grid small", dataset: { testid: "diff-table" } },
        el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "Task" }),
          el("th", { scope: "col", text: `${a} passed` }),
          el("th", { scope: "col", text: `${b} passed` }))),
        el("tbody", {}, diff.tasks.map((t) => el("tr", { class: t.differs ? "differs" : "",
          dataset: { testid: "diff-row", task: t.task_id, differs: String(t.differs) } },
        el("th", { scope: "row", text: t.task_id }),
        el("td", {}, count(t.a_passed), " ", t.a_passed === null ? null
          : runsLink(key, a, t.task_id)),
        el("td", {}, count(t.b_passed), " ", t.b_passed === null ? null
          : runsLink(key, b, t.task_id)))))));
  } catch (err) {
    box.replaceChildren(el("p", { class: "error", role: "alert", text: err.message }));
  }
}

function renderOfflineDetail(doc) {
  const names = doc.variants.map((v) => v.name);
  for (const [id, fallback] of [["#diff-a", names[0]], ["#diff-b", names[names.length - 1]]]) {
    const select = $(id);
    const keep = names.includes(select.value) ? select.value : fallback;
    select.replaceChildren(...names.map((n) => el("option", { value: n, text: n })));
    select.value = keep;
  }
  $("#offline-detail").hidden = false;
  $("#offline-title").textContent = `${doc.key} · ${doc.status}`;
  $("#offline-description").textContent = doc.description || "";
  $("#offline-facts").textContent = `${doc.tasks.count} tasks × ${doc.repeats} repeats · `
    + `steps ${doc.steps.join(", ")} · context ${JSON.stringify(doc.context)}`;
  $("#offline-tree").replaceChildren(variantTree(doc.variants) || "");
  $("#offline-runs").replaceChildren();
  loadDiff();
}

async function showOffline(key) {
  offline.key = key;
  for (const item of document.querySelectorAll('[data-testid="offline-item"]')) {
    item.setAttribute("aria-pressed", String(item.dataset.key === key));
  }
  try {
    offline.document = await api(`/offline-experiments/${encodeURIComponent(key)}`);
    renderOfflineDetail(offline.document);
  } catch (err) {
    showError($("#offline-error"), err.message);
  }
}

async function loadOffline() {
  showError($("#offline-error"), "");
  try {
    const body = await api("/offline-experiments");
    const items = (body.experiments || []).map((e) => {
      const button = el("button", { type: "button", class: "offline-item",
        "aria-pressed": String(e.key === offline.key), dataset: { testid: "offline-item",
          key: e.key } }, el("strong", { text: e.key }),
      el("span", { class: "badge neutral", text: e.status }),
      el("span", { class: "kv", text: `${e.variants} variants · ${e.tasks} tasks`
        + (e.best ? ` · best ${e.best.name} ${passRate(e.best.pass_rate)}` : "") }));
      button.addEventListener("click", () => showOffline(e.key));
      return button;
    });
    const unreadable = (body.unreadable || []).map((u) => el("p", { class: "error",
      text: `${u.key}: ${u.error}` }));
    $("#offline-list").replaceChildren(...(items.length ? items : [el("p", { class: "muted",
      text: "No offline experiments yet: python -m tools.offline_experiment create …" })]),
    ...unreadable);
    $("#offline-updated").textContent = `updated ${timeNow()}`;
    const keys = (body.experiments || []).map((e) => e.key);
    if (keys.length) showOffline(keys.includes(offline.key) ? offline.key : keys[0]);
  } catch (err) {
    showError($("#offline-error"), `Could not load offline experiments: ${err.message}`);
  }
}

function setUpOffline() {
  $("#offline-refresh").addEventListener("click", loadOffline);
  $("#diff-a").addEventListener("change", loadDiff);
  $("#diff-b").addEventListener("change", loadDiff);
}
