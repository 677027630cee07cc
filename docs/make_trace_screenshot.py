"""Render the README's trace picture: the span tree of one real /chat request, as a waterfall.

    python docs/make_trace_screenshot.py [--out docs/screenshot-trace.png]

Starts the app (simulated models, nothing slept: the bars are the app's own time) with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at a local OTLP/HTTP receiver
(tests/fakes/otlp_receiver.py), sends the EU paid demo user's message full of personal
details, decodes the exported protobuf spans and draws them as HTML, photographed by Debian's
Chromium. It is our own rendering of what a trace UI (Jaeger, Phoenix, Langfuse) receives,
not a screenshot of one of those UIs.
"""

from __future__ import annotations

import argparse
import html
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from docs.make_screenshots import CHROMIUM_ARGS, MESSAGE, local_server  # noqa: E402
from tests.fakes.otlp_receiver import OtlpReceiver, ReceivedSpan  # noqa: E402

SHOWN = ("gen_ai.agent.name", "gen_ai.provider.name", "gen_ai.request.model",
         "gen_ai.usage.input_tokens", "gen_ai.usage.output_tokens", "gen_ai.tool.name",
         "mae.variation.key", "mae.in_experiment", "mae.cost_usd", "mae.pii.types",
         "mae.route", "http.response.status_code", "error.type")
COLOURS = {"POST": "#6b7280", "invoke_workflow": "#7c3aed", "invoke_agent": "#2563eb",
           "chat": "#059669", "execute_tool": "#d97706"}


def capture_trace() -> list[ReceivedSpan]:
    """The spans of one /chat request, as exported over OTLP/HTTP."""
    import httpx

    with OtlpReceiver() as receiver:
        os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = receiver.root_url
        with local_server() as url:
            response = httpx.post(f"{url}/chat", timeout=60, json={
                "user_id": "maria-eu", "message": MESSAGE,
                "user_context": {"country": "DE", "plan": "paid"}})
            response.raise_for_status()
            trace_id = response.json()["trace_id"]
        # the server's shutdown flushed the batch processor
        return [s for s in receiver.spans() if s.trace_id == trace_id]


def _ordered(spans: list[ReceivedSpan]) -> list[tuple[int, ReceivedSpan]]:
    ids = {s.span_id for s in spans}
    children: dict[str, list[ReceivedSpan]] = {}
    for span in spans:
        children.setdefault(span.parent_span_id if span.parent_span_id in ids else "",
                            []).append(span)
    out: list[tuple[int, ReceivedSpan]] = []

    def walk(parent: str, depth: int) -> None:
        for span in sorted(children.get(parent, []), key=lambda s: s.start_ns):
            out.append((depth, span))
            walk(span.span_id, depth + 1)

    walk("", 0)
    return out


def render(spans: list[ReceivedSpan]) -> str:
    rows = _ordered(spans)
    t0 = min(s.start_ns for s in spans)
    total = max(s.end_ns for s in spans) - t0 or 1
    lines = []
    for depth, span in rows:
        left = 100 * (span.start_ns - t0) / total
        width = max(0.4, 100 * (span.end_ns - span.start_ns) / total)
        colour = COLOURS.get(span.name.split(" ")[0], "#6b7280")
        if span.status_code == 2:
            colour = "#dc2626"
        attrs = " · ".join(f"{k.split('.', 1)[1] if k.startswith('gen_ai.') else k}="
                           f"{html.escape(str(span.attributes[k]))}"
                           for k in SHOWN if k in span.attributes)
        lines.append(
            f'<tr><td class="name" style="padding-left:{8 + depth * 18}px">'
            f'{html.escape(span.name)}<div class="attrs">{attrs}</div></td>'
            f'<td class="lane"><div class="bar" style="left:{left:.2f}%;width:{width:.2f}%;'
            f'background:{colour}"></div><span class="ms" style="left:{min(left, 88):.2f}%">'
            f'{(span.end_ns - span.start_ns) / 1e6:.1f} ms</span></td></tr>')
    service = html.escape(str(spans[0].resource.get("service.name")))
    return f"""<!doctype html><meta charset="utf-8"><style>
body{{font:13px system-ui,sans-serif;margin:18px;color:#111827}}
h1{{font-size:16px;margin:0 0 4px}} p{{margin:0 0 12px;color:#4b5563}}
table{{border-collapse:collapse;width:100%}} td{{border-bottom:1px solid #e5e7eb;padding:5px}}
.name{{width:46%;font-weight:600}} .attrs{{font-weight:400;color:#4b5563;font-size:11px}}
.lane{{position:relative}} .bar{{position:absolute;top:9px;height:14px;border-radius:3px}}
.ms{{position:absolute;top:25px;font-size:10px;color:#6b7280}}</style>
<h1>Trace {spans[0].trace_id} — service {service}</h1>
<p>One POST /chat as received over OTLP/HTTP: EU paid user, message with personal data
(no message text is in any span). {len(spans)} spans; simulated models, nothing slept.</p>
<table>{''.join(lines)}</table>"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshot-trace.png")
    parser.add_argument("--chromium", type=Path, default=Path("/usr/bin/chromium"))
    args = parser.parse_args()
    if not args.chromium.exists():
        print(f"error: no Chromium at {args.chromium}: apt-get install chromium, "
              "or pass --chromium PATH", file=sys.stderr)
        return 1
    spans = capture_trace()
    page_html = render(spans)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        page_file = Path(tmp) / "trace.html"
        page_file.write_text(page_html, encoding="utf-8")
        browser = playwright.chromium.launch(executable_path=str(args.chromium),
                                             args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 600})
        page.goto(page_file.as_uri())
        page.screenshot(path=str(args.out), full_page=True)
        browser.close()
    print(f"wrote {args.out} ({len(spans)} spans)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
