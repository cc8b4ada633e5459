"""The report's inline stylesheet: calm, printable, readable without colour (text beside hue)."""

CSS = """
:root { --ink:#1f2933; --muted:#52606d; --line:#d9e2ec; --bg:#f5f7fa; --card:#fff;
  --synced:#1b7f3b; --progressing:#1f5fa8; --degraded:#a35f00; --failed:#b42318;
  --stale:#5f6b7a; }
* { box-sizing: border-box; }
body { margin:0; font:15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color:var(--ink); background:var(--bg); }
header, main { max-width: 1100px; margin: 0 auto; padding: 0 20px; }
header { padding-top: 24px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 20px; margin: 32px 0 8px; border-bottom: 2px solid var(--line);
  padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
p.meta, .muted { color: var(--muted); }
p.meta { margin: 0; font-size: 13px; }
section.card, article.card { background: var(--card); border: 1px solid var(--line);
  border-radius: 8px; padding: 12px 16px; margin: 10px 0; }
table { border-collapse: collapse; width: 100%; font-size: 14px; }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid var(--line);
  vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; text-transform: uppercase;
  letter-spacing: .03em; }
td.note { color: var(--muted); font-size: 13px; max-width: 340px; overflow-wrap: anywhere; }
code { font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.tiles { display: flex; flex-wrap: wrap; gap: 10px; margin: 14px 0 0; }
.tile { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 8px 14px; min-width: 120px; }
.tile b { display: block; font-size: 24px; }
.badge { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px;
  font-weight: 600; border: 1px solid currentColor; white-space: nowrap; }
.cond-synced { color: var(--synced); } .cond-progressing { color: var(--progressing); }
.cond-degraded { color: var(--degraded); } .cond-failed { color: var(--failed); }
.cond-stale, .cond-unknown, .cond-other { color: var(--stale); }
.stage { font-size: 12px; color: var(--muted); text-transform: uppercase; }
.charts { display: flex; flex-wrap: wrap; gap: 8px 16px; }
figure { margin: 0; } figcaption { font-size: 13px; color: var(--muted); }
figcaption b { color: var(--ink); }
svg.chart { display: block; }
svg .plot { fill: #fbfcfd; stroke: var(--line); }
svg .series { fill: none; stroke: var(--progressing); stroke-width: 2; }
svg .dot { fill: var(--progressing); }
svg .threshold { stroke: var(--failed); stroke-width: 1.5; stroke-dasharray: 5 4; }
svg .threshold-label { fill: var(--failed); font-size: 11px; }
svg .axis { fill: var(--muted); font-size: 10px; }
svg .empty { fill: var(--muted); font-size: 12px; text-anchor: middle; }
ol.timeline { list-style: none; padding: 0; margin: 0; }
ol.timeline > li { border-left: 3px solid var(--line); padding: 4px 0 10px 14px; }
ol.timeline li ul { margin: 4px 0 0; padding-left: 18px; }
.breach { color: var(--failed); font-weight: 600; }
.nodata { color: var(--muted); font-style: italic; }
footer { max-width: 1100px; margin: 40px auto 30px; padding: 0 20px; color: var(--muted);
  font-size: 12px; }
@media print { body { background: #fff; } section.card, article.card { break-inside: avoid; } }
"""
