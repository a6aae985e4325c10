/**
 * The dashboard's "relays" section: one row per relay in words (where it listens, where it sends, whether the
 * target answers, connections, bytes each way, the last 15 minutes of traffic), relays with a problem first
 * and marked, each error in full on its own line under the row so it wraps instead of widening the page.
 */
import { formatDuration } from "./format.ts";
import {
  bytesCell,
  cell,
  errorIsCurrent,
  errorText,
  escapeHtml,
  type Json,
  lastErrorLine,
  num,
  objects,
  type Problem,
  table,
} from "./html.ts";
import { trafficCell, trafficHeading, type ViewContext } from "./sparkline.ts";
import { seriesKey } from "./throughput.ts";

/** A relay that failed to start, lost its listener, or whose target is marked down. */
function isBad(r: Json): boolean {
  return r.state === "error" || r.health === "down";
}

/**
 * A working relay whose last dial failed deserves a look; once a later dial (or flow) succeeded, the error is
 * history: still shown with its age in the row, but no longer a problem.
 */
function rank(r: Json): number {
  return isBad(r) ? 0 : errorIsCurrent(r) ? 1 : 2;
}

function statusText(r: Json): string {
  const state = r.state === "listening" ? "listening" : String(r.state ?? "");
  const health = r.health === "up"
    ? '<span class="ok">target up</span>'
    : r.health === "down"
    ? '<span class="bad">target down</span>'
    : "";
  const cls = r.state === "error" ? "bad" : r.state === "listening" ? "" : "warn";
  return `${cls ? `<span class="${cls}">${escapeHtml(state)}</span>` : escapeHtml(state)}${
    health ? `<br>${health}` : ""
  }`;
}

function connections(r: Json): string {
  const udp = r.protocol === "udp";
  const main = `${cell(r.active)} open<br><small>${cell(r.total)} ${
    udp ? (r.total === 1 ? "flow in all" : "flows in all") : "in all"
  }</small>`;
  if (!udp) return main;
  const extra = [
    num(r.packetsDropped) ? `${r.packetsDropped} dropped` : "",
    num(r.flowsEvicted) ? `${r.flowsEvicted} evicted` : "",
  ].filter(Boolean).join(", ");
  return extra ? `${main}<br><small class="warn">${escapeHtml(extra)}</small>` : main;
}

/** "TCP" or "UDP", and for a TCP relay which sockets carry it (status `engine`: wgedge's own or Deno's). */
function protocolText(r: Json): string {
  const protocol = cell(String(r.protocol ?? "").toUpperCase());
  const engine = r.engine === "kernel" ? "own sockets" : r.engine === "deno" ? "Deno sockets" : "";
  return engine ? `${protocol}, ${engine}` : protocol;
}

function bytesWithPackets(bytes: unknown, packets: unknown): string {
  return num(packets) === undefined
    ? bytesCell(bytes)
    : `${bytesCell(bytes)}<br><small>${packets} packets</small>`;
}

export function relayProblems(relays: unknown): Problem[] {
  return objects(relays).filter((r) => rank(r) < 2).sort((a, b) => rank(a) - rank(b)).map((
    r,
  ) => ({
    section: "relays",
    html: `relay <b>${cell(r.id)}</b> (${cell(r.listen)} &rarr; ${cell(r.target)}): ${
      r.state === "error" ? "not running" : r.health === "down" ? "target down" : "last error"
    }${r.lastError ? ` &mdash; ${errorText(r.lastError)}` : ""}`,
  }));
}

export function renderRelays(relays: unknown, ctx: ViewContext): string {
  const list = objects(relays);
  if (list.length === 0) return '<p class="empty">no relays</p>';
  const sorted = [...list].sort((a, b) => rank(a) - rank(b) || String(a.id).localeCompare(String(b.id)));
  const rows = sorted.map((r) => ({
    cls: rank(r) === 0 ? "bad" : rank(r) === 1 ? "warn" : undefined,
    cells: [
      `<b>${cell(r.id)}</b><br><small>${protocolText(r)}</small>`,
      `<span class="addr">${cell(r.listen)}</span>`,
      `<span class="addr">${cell(r.target)}</span>${
        r.via && r.via !== "direct" && r.via !== "host" ? `<br><small>via ${cell(r.via)}</small>` : ""
      }`,
      statusText(r),
      connections(r),
      num(r.failed) ? `<span class="warn">${r.failed}</span>` : cell(r.failed),
      bytesWithPackets(r.bytesToTarget, r.packetsToTarget),
      bytesWithPackets(r.bytesToClient, r.packetsToClient),
      trafficCell(ctx, seriesKey.relay(r.id)),
    ],
    after: lastErrorLine(r, ctx.nowMs),
  }));
  const down = list.filter(isBad).length;
  const summary = `<p class="facts">${list.length} relay${list.length === 1 ? "" : "s"}${
    down ? ` &middot; <span class="bad">${down} not working</span>` : ""
  }${
    ctx.history ? ` &middot; traffic sampled every ${formatDuration(ctx.history.intervalMs / 1000)}` : ""
  }</p>`;
  return summary + table("relays-table", [
    "relay",
    "listens on",
    "sends to",
    "status",
    "connections",
    "failed dials",
    "to target",
    "to client",
    trafficHeading(ctx),
  ], rows);
}
