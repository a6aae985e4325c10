/**
 * The dashboard page (seed 002's `./monitor`, in a browser): the status JSON rendered as tables on the server,
 * refreshed by the page itself every few seconds (meta refresh: works without JavaScript, and with Basic auth
 * the browser resends the credentials). Every value is HTML-escaped. The "tunnels" section has its own view
 * (tunnels_view.ts): a table of peers per tunnel.
 */
import { cell, escapeHtml } from "./html.ts";
import { renderTunnels } from "./tunnels_view.ts";
import { renderStations } from "./ntrip_view.ts";

export { escapeHtml };

function table(rows: Record<string, unknown>[]): string {
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const head = cols.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const body = rows.map((r) => {
    const cls = r.health === "down" || r.state === "error" ? ' class="bad"' : "";
    return `<tr${cls}>${cols.map((c) => `<td>${cell(r[c])}</td>`).join("")}</tr>`;
  }).join("\n");
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/**
 * The outcome of the last reload, in words: a reload that was rejected or applied only in part means the
 * running configuration is not the file's, so it is shown first and in red, with every error.
 */
function reloadSection(v: Record<string, unknown>): string {
  const result = String(v.lastResult ?? "none yet");
  const errors = Array.isArray(v.errors) ? v.errors : [];
  const when = v.lastAt ? ` at ${cell(v.lastAt)}` : "";
  const words: Record<string, string> = {
    "none yet": "no reload since start",
    success: `last reload${when}: applied`,
    partial: `last reload${when}: applied in part; what failed is still as before or stopped`,
    rejected: `last reload${when}: REJECTED; the running configuration is the previous one`,
  };
  const bad = result === "partial" || result === "rejected";
  const list = errors.length ? `\n<ul>${errors.map((e) => `<li>${cell(e)}</li>`).join("")}</ul>` : "";
  return `<section id="reload"${bad ? ' class="bad"' : ""}><h2>configuration</h2>
<p>${escapeHtml(words[result] ?? result)} &middot; last fully applied ${
    cell(v.lastSuccessAt)
  } &middot; reloads ${cell(v.reloads)}</p>${list}
</section>`;
}

function section(name: string, v: unknown, nowMs: number): string {
  let inner: string;
  if (name === "reload" && v && typeof v === "object" && !Array.isArray(v)) {
    return reloadSection(v as Record<string, unknown>);
  }
  if (name === "tunnels" && Array.isArray(v)) {
    inner = renderTunnels(v, nowMs);
  } else if (name === "ntrip_stations" && Array.isArray(v)) {
    inner = renderStations(v, nowMs);
  } else if (Array.isArray(v)) {
    inner = v.length === 0
      ? '<p class="empty">none</p>'
      : v.every((x) => x && typeof x === "object" && !Array.isArray(x))
      ? table(v as Record<string, unknown>[])
      : `<pre>${escapeHtml(JSON.stringify(v, null, 2))}</pre>`;
  } else if (v && typeof v === "object") {
    inner = table(Object.entries(v).map(([k, x]) => ({ key: k, value: x })));
  } else {
    inner = `<p>${cell(v)}</p>`;
  }
  return `<section><h2>${escapeHtml(name)}</h2>\n${inner}\n</section>`;
}

/** The page for a (redacted) status object; `nowMs` (wall clock) turns handshake times into ages. */
export function renderDashboard(
  status: Record<string, unknown>,
  refreshSeconds = 5,
  nowMs: number = Date.now(),
): string {
  const { service: _service, version, uptimeSeconds, reload, ...sections } = status;
  // The reload outcome comes first: when it failed, nothing below is running the file's configuration.
  const ordered = reload === undefined
    ? Object.entries(sections)
    : [["reload", reload], ...Object.entries(sections)];
  const body = ordered.map(([k, v]) => section(k as string, v, nowMs)).join("\n");
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="${refreshSeconds}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>wgedge</title>
<style>
body{font-family:system-ui,sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;margin-bottom:1rem;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
th{background:#f3f3f3} tr.bad td{background:#fde2e2} .empty{color:#888}
section.bad{background:#fde2e2;border:1px solid #e0a0a0;padding:.25rem .75rem}
tr.stale td{color:#777} code{font-size:.85rem} h3{margin:.75rem 0 .25rem} h3 small{font-weight:normal;color:#666}
table.compact{font-size:.78rem} table.compact th,table.compact td{padding:.1rem .3rem;white-space:nowrap}
table.compact td.where{max-width:13rem;overflow:hidden;text-overflow:ellipsis} table.compact small{color:#666}
tr.warn td{background:#fff4d6} tr.off td{color:#999} span.bad{color:#b00} span.warn{color:#a60} span.ok{color:#070}
</style>
</head>
<body>
<h1>wgedge ${cell(version)}</h1>
<p>up ${cell(uptimeSeconds)} s &middot; refreshes every ${refreshSeconds} s &middot;
<a href="api/v1/status">status JSON</a> &middot; <a href="metrics">metrics</a></p>
${body}
</body>
</html>
`;
}
