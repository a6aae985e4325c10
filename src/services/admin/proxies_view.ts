/**
 * The dashboard's "proxies" section (SOCKS5 and HTTP proxies into a tunnel): one row per proxy in words
 * (where it listens, which tunnel it dials through, whether it asks for a login, connections, failures by
 * kind, bytes each way with UDP included, the last 15 minutes of traffic), proxies with a problem first, each
 * error on its own wrapping line. The user name is shown (the status carries it); a password never is.
 */
import { words } from "./format.ts";
import {
  bytesCell,
  cell,
  errorIsCurrent,
  errorText,
  escapeHtml,
  isObject,
  type Json,
  lastErrorLine,
  num,
  objects,
  type Problem,
  table,
} from "./html.ts";
import { trafficCell, trafficHeading, type ViewContext } from "./sparkline.ts";
import { seriesKey } from "./throughput.ts";

/** Not running; or an error not yet followed by a good dial (an older one is shown in the row, not a problem). */
function rank(p: Json): number {
  return p.state === "error" ? 0 : errorIsCurrent(p) ? 1 : 2;
}

const FAILURES = ["refused", "loginFailures", "badRequests", "handshakeTimeouts", "dialFailures"];

function failures(p: Json): string {
  const shown = FAILURES.filter((k) => num(p[k])).map((k) => `${p[k]} ${escapeHtml(words(k))}`);
  if (isObject(p.udpDropped)) {
    const dropped = Object.values(p.udpDropped).reduce((a: number, n) => a + (num(n) ?? 0), 0);
    if (dropped) shown.push(`${dropped} UDP datagrams dropped`);
  }
  return shown.length ? `<span class="warn">${shown.join("<br>")}</span>` : "none";
}

function bytesBoth(tcp: unknown, udp: unknown): string {
  const u = num(udp);
  return u ? `${bytesCell((num(tcp) ?? 0) + u)}<br><small>UDP ${bytesCell(u)}</small>` : bytesCell(tcp);
}

export function proxyProblems(proxies: unknown): Problem[] {
  return objects(proxies).filter((p) => rank(p) < 2).sort((a, b) => rank(a) - rank(b)).map((p) => ({
    section: "proxies",
    html: `proxy <b>${cell(p.id)}</b> (${cell(p.protocol)} on ${cell(p.listen)}): ${
      p.state === "error" ? "not running" : "last error"
    }${p.lastError ? ` &mdash; ${errorText(p.lastError)}` : ""}`,
  }));
}

export function renderProxies(proxies: unknown, ctx: ViewContext): string {
  const list = objects(proxies);
  if (list.length === 0) return '<p class="empty">no proxies</p>';
  const rows = [...list].sort((a, b) => rank(a) - rank(b) || String(a.id).localeCompare(String(b.id))).map(
    (p) => ({
      cls: rank(p) === 0 ? "bad" : rank(p) === 1 ? "warn" : undefined,
      cells: [
        `<b>${cell(p.id)}</b><br><small>${cell(p.protocol)}</small>`,
        `<span class="addr">${cell(p.listen)}</span>`,
        `<span class="addr">${cell(p.via)}</span>`,
        `${p.state === "error" ? `<span class="bad">error</span>` : cell(p.state)}<br><small>${
          p.userRequired ? `login ${p.user !== undefined ? cell(p.user) : "required"}` : "no login"
        }</small>`,
        `${cell(p.open)} open<br><small>${cell(p.total)} in all${
          num(p.maxConnections) ? `, at most ${p.maxConnections}` : ""
        }</small>`,
        failures(p),
        bytesBoth(p.bytesToTarget, p.udpBytesToTarget),
        bytesBoth(p.bytesToClient, p.udpBytesToClient),
        trafficCell(ctx, seriesKey.proxy(p.id)),
      ],
      after: lastErrorLine(p, ctx.nowMs),
    }),
  );
  return table("proxies-table", [
    "proxy",
    "listens on",
    "dials through",
    "status",
    "connections",
    "failures",
    "to target",
    "to client",
    trafficHeading(ctx),
  ], rows);
}
