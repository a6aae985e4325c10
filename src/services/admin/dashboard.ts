/**
 * The dashboard page (seed 002's `./monitor`, in a browser), rendered on the server from the same redacted
 * status object /api/v1/status returns (the page is a view over that contract, it adds nothing to it) plus
 * the in-memory throughput history (throughput.ts) for the sparklines. Layout for a 1366-px screen:
 *
 * - a "problems" box first: a failed reload, relays not working or erroring, rpc routes not registered,
 *   tunnels without a session, NTRIP stations in ERROR, a status section whose provider failed;
 * - one section per service in a fixed order (relays, proxies, tunnels, rps mappings, rpc routes, mwgp, NTRIP stations,
 *   NTRIP caster, configuration), each with headings in words, bytes in binary units, ages and durations in
 *   words, a sparkline per item; rows with problems first and marked, errors on their own wrapping line;
 * - sections the page does not know are still shown, as tables with the field names in words.
 *
 * Refreshed by the page itself (meta refresh: works without JavaScript, and with Basic auth the browser
 * resends the credentials). Every value is HTML-escaped; nothing is loaded from outside the page.
 */
import { formatAgeOf, formatDuration, words } from "./format.ts";
import { cell, errorText, escapeHtml, isObject, type Json, num, type Problem, valueHtml } from "./html.ts";
import { renderTunnels, tunnelProblems } from "./tunnels_view.ts";
import { renderCaster, renderStations, stationProblems } from "./ntrip_view.ts";
import { relayProblems, renderRelays } from "./relays_view.ts";
import { proxyProblems, renderProxies } from "./proxies_view.ts";
import { renderMappings, renderRoutes, routeProblems } from "./rp_view.ts";
import { mwgpProblems, renderMwgp } from "./mwgp_view.ts";
import type { ViewContext } from "./sparkline.ts";
import type { ThroughputHistory } from "./throughput.ts";

export { escapeHtml };

/** A section the page has no view for: objects as one table, a list of objects as a table. */
function genericSection(v: unknown): string {
  const rows: Json[] = Array.isArray(v)
    ? v.map((x) => isObject(x) ? x : { value: x })
    : isObject(v)
    ? [v]
    : [];
  if (rows.length === 0) return Array.isArray(v) ? '<p class="empty">none</p>' : `<p>${cell(v)}</p>`;
  const cols: string[] = [];
  for (const r of rows) for (const k of Object.keys(r)) if (!cols.includes(k)) cols.push(k);
  const head = cols.map((c) => `<th>${escapeHtml(words(c))}</th>`).join("");
  const body = rows.map((r) => {
    const cls = r.health === "down" || r.state === "error" ? ' class="bad"' : "";
    return `<tr${cls}>${
      cols.map((c) => `<td>${r[c] === undefined ? "" : valueHtml(c, r[c])}</td>`).join("")
    }</tr>`;
  }).join("\n");
  return `<table><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

function reloadBad(v: unknown): boolean {
  return isObject(v) && (v.lastResult === "partial" || v.lastResult === "rejected");
}

/**
 * The outcome of the last reload, in words: a reload that was rejected or applied only in part means the
 * running configuration is not the file's, so it is shown first and in red, with every error.
 */
function reloadBody(v: Json, nowMs: number): string {
  const result = String(v.lastResult ?? "none yet");
  const errors = Array.isArray(v.errors) ? v.errors : [];
  const when = v.lastAt ? ` (${escapeHtml(formatAgeOf(v.lastAt, nowMs))})` : "";
  const wordsFor: Record<string, string> = {
    "none yet": "no reload since start",
    success: `last reload${when}: applied`,
    partial: `last reload${when}: applied in part; what failed is still as before or stopped`,
    rejected: `last reload${when}: REJECTED; the running configuration is the previous one`,
  };
  const list = errors.length ? `\n<ul>${errors.map((e) => `<li>${errorText(e)}</li>`).join("")}</ul>` : "";
  return `<p>${wordsFor[result] ?? escapeHtml(result)} &middot; configuration last fully applied ${
    escapeHtml(formatAgeOf(v.lastSuccessAt, nowMs))
  } &middot; ${cell(v.reloads)} reload${v.reloads === 1 ? "" : "s"} since start</p>${list}`;
}

interface Section {
  id: string;
  title: string;
  html: string;
  bad?: boolean;
}

/** The titles of the sections the page knows, in page order. */
const ORDER = [
  "relays",
  "proxies",
  "tunnels",
  "port_mappings",
  "rp_routes",
  "mwgp",
  "ntrip_stations",
  "ntrip_caster",
  "reload",
];

function sectionsOf(status: Json, ctx: ViewContext): { sections: Section[]; problems: Problem[] } {
  const sections: Section[] = [];
  const problems: Problem[] = [];
  const done = new Set<string>();
  const take = (name: string) => {
    done.add(name);
    return status[name];
  };
  for (const [name, v] of Object.entries(status)) {
    // A provider that threw is reported by the registry as `{ error }`: that is a problem of its own.
    if (isObject(v) && Object.keys(v).length === 1 && typeof v.error === "string") {
      problems.push({
        section: name,
        html: `${escapeHtml(words(name))}: status failed &mdash; ${errorText(v.error)}`,
      });
    }
  }
  if ("reload" in status) {
    const v = take("reload");
    if (reloadBad(v)) {
      problems.unshift({
        section: "reload",
        html: `the last configuration reload ${
          (v as Json).lastResult === "rejected" ? "was rejected" : "was applied only in part"
        }: the running configuration is not the file's`,
      });
    }
    if (isObject(v)) {
      sections.push({
        id: "reload",
        title: "Configuration",
        html: reloadBody(v, ctx.nowMs),
        bad: reloadBad(v),
      });
    }
  }
  if ("relays" in status) {
    const v = take("relays");
    problems.push(...relayProblems(v));
    sections.push({ id: "relays", title: "Relays", html: renderRelays(v, ctx) });
  }
  if ("proxies" in status) {
    const v = take("proxies");
    problems.push(...proxyProblems(v));
    sections.push({ id: "proxies", title: "Proxies (SOCKS5, HTTP)", html: renderProxies(v, ctx) });
  }
  if ("tunnels" in status) {
    const v = take("tunnels");
    problems.push(...tunnelProblems(v, ctx.nowMs));
    sections.push({
      id: "tunnels",
      title: "WireGuard tunnels",
      html: Array.isArray(v) ? renderTunnels(v, ctx) : genericSection(v),
    });
  }
  if ("port_mappings" in status || "rp_server" in status) {
    const v = take("port_mappings"), server = take("rp_server");
    sections.push({
      id: "port_mappings",
      title: "Port mappings (rps)",
      html: renderMappings(v, server, ctx),
    });
  }
  if ("rp_routes" in status || "rp_client" in status) {
    const v = take("rp_routes"), client = take("rp_client");
    problems.push(...routeProblems(v, client));
    sections.push({ id: "rp_routes", title: "Routes (rpc)", html: renderRoutes(v, client, ctx) });
  }
  for (const name of Object.keys(status).filter((n) => n.startsWith("mwgp")).sort()) {
    const v = take(name);
    problems.push(...mwgpProblems(name, v));
    const mode = isObject(v) && typeof v.mode === "string" ? v.mode : "";
    sections.push({ id: name, title: `mwgp ${mode}`.trim() + ` (${name})`, html: renderMwgp(name, v, ctx) });
  }
  if ("ntrip_stations" in status) {
    const v = take("ntrip_stations");
    problems.push(...stationProblems(v));
    sections.push({
      id: "ntrip_stations",
      title: "NTRIP stations",
      html: Array.isArray(v) ? renderStations(v, ctx.nowMs) : genericSection(v),
    });
  }
  if ("ntrip_caster" in status) {
    sections.push({
      id: "ntrip_caster",
      title: "NTRIP caster",
      html: renderCaster(take("ntrip_caster"), ctx),
    });
  }
  for (const [name, v] of Object.entries(status)) {
    if (!done.has(name)) sections.push({ id: name, title: words(name), html: genericSection(v) });
  }
  // Known sections in page order, others after; a failed reload goes first of all.
  const rank = (s: Section) => {
    if (s.id === "reload" && s.bad) return -1;
    const i = ORDER.indexOf(s.id.startsWith("mwgp") ? "mwgp" : s.id);
    return i < 0 ? ORDER.length - 1 : i;
  };
  sections.sort((a, b) => rank(a) - rank(b));
  return { sections, problems };
}

function problemsBox(problems: Problem[]): string {
  if (problems.length === 0) return '<p id="problems" class="allok">No problem found.</p>';
  return `<section id="problems" class="bad"><h2>&#9888; ${problems.length} problem${
    problems.length === 1 ? "" : "s"
  }</h2>
<ul>${
    problems.map((p) => `<li>${p.html} <a href="#${escapeHtml(p.section)}">&darr;</a></li>`).join("\n")
  }</ul>
</section>`;
}

const STYLE = `
*{box-sizing:border-box}
body{font:14px/1.35 system-ui,sans-serif;margin:0 auto;padding:.75rem 1.25rem;color:#1d232a;max-width:1600px}
header{display:flex;flex-wrap:wrap;align-items:baseline;gap:.25rem 1rem;border-bottom:2px solid #2463b3;margin-bottom:.5rem}
header h1{font-size:1.3rem;margin:.2rem 0} header p{margin:0;color:#555}
h2{font-size:1.05rem;margin:1rem 0 .3rem;padding-bottom:.1rem;border-bottom:1px solid #ddd}
h2 small{font-weight:normal;color:#666}
section.bad{background:#fdecec;border:1px solid #e0a0a0;border-left:5px solid #c62828;padding:.1rem .8rem;margin:.5rem 0}
section.bad h2{color:#b71c1c;border:0} section.bad ul{margin:.2rem 0 .5rem;padding-left:1.2rem}
p.allok{color:#1b5e20;background:#e8f5e9;padding:.3rem .8rem;border-left:5px solid #2e7d32;margin:.5rem 0}
table{border-collapse:collapse;width:100%;font-size:.85rem;margin-bottom:.5rem}
th,td{border-bottom:1px solid #e2e2e2;padding:.2rem .45rem;text-align:left;vertical-align:top}
th{background:#f1f3f5;font-weight:600;white-space:nowrap}
tr.bad>td{background:#fdecec} tr.warn>td{background:#fff6e0} tr.detail>td{padding-top:0;border-top:0}
tr.stale>td{color:#777} tr.off>td{color:#999} tr.tunnel-start>td{border-top:1px solid #bbb}
td .n{white-space:nowrap} small{color:#666} .empty{color:#888}
.err{color:#b71c1c;overflow-wrap:anywhere;white-space:normal} .addr,.wrap{overflow-wrap:anywhere}
code{font-size:.8rem} code.key{display:inline-block;max-width:9.5em;overflow:hidden;text-overflow:ellipsis;vertical-align:bottom;white-space:nowrap}
td.tunnel{max-width:16rem}
.bad,span.bad{color:#b71c1c} span.warn,small.warn{color:#a15c00} span.ok{color:#1b5e20}
.facts{margin:.2rem 0 .4rem;color:#333} .facts b{font-weight:600}
div.traffic{display:inline-flex;vertical-align:middle;align-items:center;gap:.4rem;white-space:nowrap;line-height:1.1}
svg.spark{width:100px;height:22px;flex:none;background:#f7f9fc;border-bottom:1px solid #d5dbe3}
svg.spark path{fill:none;stroke:#2463b3;stroke-width:1.2;vector-effect:non-scaling-stroke}
svg.spark path.area{fill:#9dbde6} svg.spark path.none{stroke:#bbb;stroke-dasharray:2 2}
table.compact{font-size:.78rem} table.compact th,table.compact td{padding:.1rem .3rem;white-space:nowrap}
table.compact td.where{max-width:13rem;overflow:hidden;text-overflow:ellipsis}
`;

/**
 * The page for a (redacted) status object; `nowMs` (wall clock) turns times into ages, `history` (the
 * admin server's sampler) draws the sparklines.
 */
export function renderDashboard(
  status: Record<string, unknown>,
  refreshSeconds = 5,
  nowMs: number = Date.now(),
  history?: ThroughputHistory,
): string {
  const { service: _service, version, uptimeSeconds, ...rest } = status;
  const ctx: ViewContext = { nowMs, history };
  const { sections, problems } = sectionsOf(rest, ctx);
  const body = sections.map((s) =>
    `<section id="${escapeHtml(s.id)}"${s.bad ? ' class="bad"' : ""}><h2>${
      escapeHtml(s.title)
    }</h2>\n${s.html}\n</section>`
  ).join("\n");
  const up = num(uptimeSeconds) !== undefined
    ? formatDuration(uptimeSeconds as number)
    : String(uptimeSeconds);
  const at = new Date(nowMs).toISOString().slice(11, 19);
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="refresh" content="${refreshSeconds}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${problems.length ? `(${problems.length}) ` : ""}wgedge</title>
<style>${STYLE}</style>
</head>
<body>
<header><h1>wgedge ${cell(version)}</h1>
<p>up ${escapeHtml(up)} &middot; page of ${at} UTC, refreshes every ${refreshSeconds} s &middot;
<a href="api/v1/status">status JSON</a> &middot; <a href="metrics">metrics</a></p></header>
${problemsBox(problems)}
${body}
</body>
</html>
`;
}
