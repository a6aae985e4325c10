/**
 * The dashboard's "ntrip_stations" section: seed 000's monitor, one compact row per relay station, readable
 * with 300 stations on a 1366-px screen. Stations with problems come first (ERROR, BACKOFF, WAITING_DATA,
 * connecting, waiting to start, RUNNING, DISABLED), then by id; a summary line counts the states. Clicking a
 * column heading sorts by it (a few lines of script; the order is kept in the URL fragment across the page's
 * refresh, and without script the problems-first order stays). Bytes and ages are in human units with the
 * exact value in the cell's title. The status JSON has been through redactDeep and only named fields are
 * read here.
 */
import { formatDuration, words } from "./format.ts";
import {
  ageCell,
  bytesCell,
  cell,
  escapeHtml,
  isObject,
  type Json,
  num,
  objects,
  type Problem,
  table,
} from "./html.ts";
import { trafficCell, trafficHeading, type ViewContext } from "./sparkline.ts";
import { seriesKey } from "./throughput.ts";
import { joinHostPort } from "../../util/host_port.ts";

/** Problems first. */
const STATE_ORDER = [
  "ERROR",
  "BACKOFF",
  "WAITING_DATA",
  "CONNECTING_SOURCE",
  "CONNECTING_DESTINATION",
  "WAITING_START",
  "RUNNING",
  "DISABLED",
];
const STATE_CLASS: Record<string, string> = {
  ERROR: "bad",
  BACKOFF: "warn",
  WAITING_DATA: "warn",
  RUNNING: "ok",
  DISABLED: "off",
};

function stateRank(state: unknown): number {
  const i = STATE_ORDER.indexOf(String(state));
  return i < 0 ? STATE_ORDER.length : i;
}

/** Problems first, then by id. */
export function sortStations(stations: Json[]): Json[] {
  return [...stations].sort((a, b) =>
    stateRank(a.state) - stateRank(b.state) || String(a.id).localeCompare(String(b.id))
  );
}

function sideText(side: unknown): { text: string; title: string } {
  if (!isObject(side)) return { text: cell(side), title: "" };
  const path = side.path === "tunnel" ? "wg" : side.path === "socks5" ? "socks5" : side.path ? "direct" : "";
  const where = `${side.mount}@${joinHostPort(String(side.host), String(side.port))}`;
  const title = [
    `v${side.version}`,
    side.phase,
    side.endpoint ? `via ${side.path} ${side.endpoint}` : side.path ? `via ${side.path}` : "",
    side.lastReply ? `reply: ${side.lastReply}` : "",
    num(side.uptimeSeconds) !== undefined ? `session ${formatDuration(side.uptimeSeconds as number)}` : "",
  ].filter(Boolean).join(" · ");
  return { text: `${escapeHtml(where)}${path ? ` <small>${escapeHtml(path)}</small>` : ""}`, title };
}

function frameAgeCell(v: unknown): string {
  const n = num(v);
  if (n === undefined) return '<span class="empty">never</span>';
  return `<span title="${n} s">${escapeHtml(formatDuration(n))}</span>`;
}

function retryCell(iso: unknown, nowMs: number): string {
  if (typeof iso !== "string") return "";
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return cell(iso);
  return `<span title="${escapeHtml(iso)}">in ${
    escapeHtml(formatDuration(Math.max(0, (at - nowMs) / 1000)))
  }</span>`;
}

function problemCell(s: Json): string {
  const e = s.lastError;
  if (!isObject(e)) return "";
  const reply = isObject(s.source) && e.side === "source"
    ? s.source.lastReply
    : isObject(s.destination) && e.side === "destination"
    ? s.destination.lastReply
    : undefined;
  const short = `${e.side === "destination" ? "dst" : "src"}: ${e.kind}`;
  return `<span title="${cell(e.message)}${reply ? ` (${cell(reply)})` : ""}">${escapeHtml(short)}</span>`;
}

/** Column headings with the sort key the script uses (data-sort values are set per cell). */
const COLUMNS = [
  "station",
  "state",
  "for",
  "source",
  "destination",
  "in",
  "out",
  "frames",
  "last frame",
  "crc",
  "reconn.",
  "gga",
  "problem",
  "next try",
];

/** Columns cut with an ellipsis (host names, error kinds) so a row stays on one line at 1366 px. */
const WIDE_COLUMNS = new Set([3, 4, 12]);

function row(s: Json, nowMs: number): string {
  const src = sideText(s.source), dst = sideText(s.destination);
  const reconnects = (side: unknown) => isObject(side) ? num(side.reconnects) ?? 0 : 0;
  const cells: [string, string | number, string?][] = [
    [cell(s.id), String(s.id)],
    [`<b>${cell(s.state)}</b>`, stateRank(s.state)],
    [
      num(s.stateSeconds) !== undefined ? escapeHtml(formatDuration(s.stateSeconds as number)) : "",
      num(s.stateSeconds) ?? 0,
    ],
    [src.text, String(isObject(s.source) ? s.source.mount : ""), src.title],
    [dst.text, String(isObject(s.destination) ? s.destination.mount : ""), dst.title],
    [bytesCell(s.bytesIn), num(s.bytesIn) ?? 0],
    [bytesCell(s.bytesOut), num(s.bytesOut) ?? 0],
    [cell(s.frames), num(s.frames) ?? 0],
    [frameAgeCell(s.lastFrameAgeSeconds), num(s.lastFrameAgeSeconds) ?? 1e12],
    [cell(s.crcErrors), num(s.crcErrors) ?? 0],
    [
      `${reconnects(s.source)}/${reconnects(s.destination)}`,
      reconnects(s.source) + reconnects(s.destination),
    ],
    [cell(s.ggaSent), num(s.ggaSent) ?? 0],
    [problemCell(s), isObject(s.lastError) ? String(s.lastError.kind) : ""],
    [retryCell(s.nextRetryAt, nowMs), typeof s.nextRetryAt === "string" ? Date.parse(s.nextRetryAt) : 1e15],
  ];
  const cls = STATE_CLASS[String(s.state)];
  return `<tr${cls ? ` class="${cls}"` : ""}>${
    cells.map(([html, key, title], i) =>
      `<td data-sort="${escapeHtml(String(key))}"${WIDE_COLUMNS.has(i) ? ' class="where"' : ""}${
        title ? ` title="${escapeHtml(title)}"` : ""
      }>${html}</td>`
    ).join("")
  }</tr>`;
}

/** Sorts the table by a clicked heading (numbers numerically); the choice lives in the URL fragment. */
const SORT_SCRIPT = `<script>
(function(){var t=document.getElementById("ntrip-stations");if(!t)return;
function sort(i,desc){var b=t.tBodies[0],r=[].slice.call(b.rows);r.sort(function(x,y){
var a=x.cells[i].dataset.sort,c=y.cells[i].dataset.sort,n=+a-+c;
var d=(isNaN(n)?a.localeCompare(c):n);return desc?-d:d;});r.forEach(function(x){b.appendChild(x);});}
var m=/ntrip-sort=(\\d+)(d?)/.exec(location.hash);if(m)sort(+m[1],m[2]==="d");
[].forEach.call(t.tHead.rows[0].cells,function(h,i){h.style.cursor="pointer";h.onclick=function(){
var desc=location.hash==="#ntrip-sort="+i;location.hash="ntrip-sort="+i+(desc?"d":"");sort(i,desc);};});})();
</script>`;

/** The inner HTML of the "ntrip_stations" section. */
export function renderStations(stations: unknown[], nowMs: number): string {
  const objects = stations.filter(isObject);
  if (objects.length === 0) return '<p class="empty">no stations</p>';
  const counts = new Map<string, number>();
  for (const s of objects) counts.set(String(s.state), (counts.get(String(s.state)) ?? 0) + 1);
  const summary = [...counts].sort((a, b) => stateRank(a[0]) - stateRank(b[0]))
    .map(([state, n]) => `<span class="${STATE_CLASS[state] ?? ""}">${escapeHtml(state)} ${n}</span>`)
    .join(" &middot; ");
  const head = COLUMNS.map((c) => `<th>${escapeHtml(c)}</th>`).join("");
  const body = sortStations(objects).map((s) => row(s, nowMs)).join("\n");
  return `<p>${objects.length} station${objects.length === 1 ? "" : "s"}: ${summary}</p>
<table id="ntrip-stations" class="compact"><thead><tr>${head}</tr></thead><tbody>
${body}
</tbody></table>${SORT_SCRIPT}`;
}

export function stationProblems(stations: unknown): Problem[] {
  const bad = objects(stations).filter((s) => s.state === "ERROR");
  if (bad.length === 0) return [];
  const shown = bad.slice(0, 5).map((s) => {
    const e = isObject(s.lastError) ? s.lastError : {};
    return `<b>${cell(s.id)}</b>${e.kind ? ` (${cell(e.side)}: ${cell(e.kind)})` : ""}`;
  });
  return [{
    section: "ntrip_stations",
    html: `${bad.length} NTRIP station${bad.length === 1 ? "" : "s"} in ERROR: ${shown.join(", ")}${
      bad.length > shown.length ? ", &hellip;" : ""
    }`,
  }];
}

/** The "ntrip_caster" section: one row per mount (source, clients, bytes, frames), refusals by reason. */
export function renderCaster(v: unknown, ctx: ViewContext): string {
  if (!isObject(v)) return `<p>${cell(v)}</p>`;
  const mounts = objects(v.mounts);
  const rejected = isObject(v.rejected)
    ? Object.entries(v.rejected).filter(([, n]) => num(n)).map(([k, n]) =>
      `${escapeHtml(words(k))} ${cell(n)}`
    )
    : [];
  const rows = mounts.map((m) => {
    const src = isObject(m.source) ? m.source : undefined;
    return {
      cls: src ? undefined : "off",
      cells: [
        `<b>${cell(m.mount)}</b>${m.open ? " <small>open</small>" : ""}`,
        src
          ? `<span class="addr">${cell(src.address)}</span><br><small>since ${
            ageCell(src.connectedAt, ctx.nowMs)
          }</small>`
          : '<span class="empty">no source</span>',
        cell(objects(m.clients).length),
        bytesCell(m.bytesIn),
        bytesCell(m.bytesOut),
        `${cell(m.frames)}${
          num(m.crcErrors) ? ` <small class="warn">${m.crcErrors} CRC errors</small>` : ""
        }`,
        num(m.lastFrameAgeMs) !== undefined
          ? escapeHtml(`${formatDuration((m.lastFrameAgeMs as number) / 1000)} ago`)
          : '<span class="empty">never</span>',
        trafficCell(ctx, seriesKey.mount(m.mount)),
      ],
    };
  });
  return `<p class="facts">listens on <b>${cell(v.listen)}</b> &middot; refused: ${
    rejected.length ? rejected.join(" &middot; ") : "none"
  }</p>${
    rows.length
      ? table("caster-table", [
        "mount",
        "source",
        "clients",
        "in",
        "out",
        "frames",
        "last frame",
        trafficHeading(ctx),
      ], rows)
      : '<p class="empty">no mount</p>'
  }`;
}
