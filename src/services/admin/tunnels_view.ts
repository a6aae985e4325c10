/**
 * The dashboard's "tunnels" section: one compact table for every tunnel, one row per peer in the words of
 * `wg show` (latest handshake as an age, transfer in binary units), the tunnel's facts and its traffic of the
 * last 15 minutes beside its peers. Tunnels with a peer we dial (it has an endpoint) but no working session
 * come first and are marked. The status JSON has been through redactDeep and only named fields are read: a
 * preshared key shows as the keying mode, never as a value. Fields a newer status adds are shown escaped
 * under the peer rather than dropped.
 */
import { REJECT_AFTER_TIME_MS } from "../../wireguard/constants.ts";
import { formatAgeOf, formatBytes, formatDuration, words } from "./format.ts";
import {
  bytesCell,
  cell,
  errorText,
  escapeHtml,
  isObject,
  type Json,
  objects,
  type Problem,
  valueHtml,
} from "./html.ts";
import { trafficCell, trafficHeading, type ViewContext } from "./sparkline.ts";
import { seriesKey } from "./throughput.ts";

export { formatBytes };

/** `never`, or how long ago an ISO time was (`42 s ago`, `10 min ago`); a clock step back shows `0 s ago`. */
export function formatHandshakeAge(iso: unknown, nowMs: number): string {
  return formatAgeOf(iso, nowMs);
}

/** `off` for 0/absent (WireGuard's own word), else `every N s`. */
export function formatKeepalive(seconds: unknown): string {
  if (seconds === undefined || seconds === null || seconds === 0) return "off";
  return typeof seconds === "number" ? `every ${seconds} s` : String(seconds);
}

const KNOWN_PEER_FIELDS = new Set([
  "publicKey",
  "endpoint",
  "allowedIps",
  "lastHandshake",
  "rxBytes",
  "txBytes",
  "keying",
  "persistentKeepalive",
  "handshakes",
  "resolution",
]);

/** A handshake older than REJECT_AFTER_TIME (or none) means no usable session: the row is dimmed. */
function isStale(peer: Json, nowMs: number): boolean {
  const v = peer.lastHandshake;
  if (v === null || v === undefined) return true;
  const at = typeof v === "string" ? Date.parse(v) : NaN;
  return !Number.isNaN(at) && nowMs - at > REJECT_AFTER_TIME_MS;
}

/** A peer we dial (it has an endpoint) without a working session: the tunnel does not carry traffic. */
function isDown(peer: Json, nowMs: number): boolean {
  return Boolean(peer.endpoint || isObject(peer.resolution)) && isStale(peer, nowMs);
}

function tunnelDown(t: Json, nowMs: number): boolean {
  return objects(t.peers).some((p) => isDown(p, nowMs));
}

function tunnelCell(t: Json, peers: number): string {
  const facts: string[] = [];
  if (Array.isArray(t.addresses) && t.addresses.length) {
    facts.push(t.addresses.map((a) => cell(a)).join(", "));
  }
  if (t.listenPort !== undefined) facts.push(`UDP port ${cell(t.listenPort)}`);
  if (Array.isArray(t.names) && t.names.length > 1) {
    facts.push(`also named ${t.names.slice(1).map((n) => cell(n)).join(", ")}`);
  }
  if (typeof t.refs === "number") {
    const who = Array.isArray(t.users) && t.users.length ? `: ${t.users.map((u) => cell(u)).join(", ")}` : "";
    facts.push(`used by ${t.refs}${who}`);
  }
  if (t.publicKey !== undefined) {
    facts.push(`key <code class="key" title="${cell(t.publicKey)}">${cell(t.publicKey)}</code>`);
  }
  const {
    name: _n,
    names: _ns,
    refs: _r,
    users: _u,
    addresses: _a,
    publicKey: _k,
    listenPort: _l,
    peers: _p,
    ...rest
  } = t;
  for (const [k, v] of Object.entries(rest)) facts.push(`${escapeHtml(words(k))}: ${valueHtml(k, v)}`);
  return `<b>${t.name !== undefined ? cell(t.name) : "(unnamed)"}</b> <small>${peers} peer${
    peers === 1 ? "" : "s"
  }</small><br><small class="wrap">${facts.join("<br>")}</small>`;
}

/** ", next try in 14 s" for a resolution that failed, or "" when the status gives no time. */
function nextTry(r: Json, nowMs: number): string {
  const next = typeof r.nextAttempt === "string" ? Date.parse(r.nextAttempt) : NaN;
  return Number.isNaN(next)
    ? ""
    : `, next try in ${escapeHtml(formatDuration(Math.max(0, (next - nowMs) / 1000)))}`;
}

/**
 * The endpoint in use, and for a host name what became of it: resolved when, or why not and when it is tried
 * again (the device re-resolves names; a name that failed is retried sooner).
 */
function endpointCell(p: Json, nowMs: number): string {
  const addr = p.endpoint
    ? `<span class="addr">${cell(p.endpoint)}</span>`
    : '<span class="empty">none</span>';
  const r = p.resolution;
  if (!isObject(r)) return addr;
  if (r.error) {
    const when = nextTry(r, nowMs);
    return `${addr}<br><span class="addr">${cell(r.name)}</span>: ${errorText(r.error)}<br><small>${
      cell(r.failures)
    } failed${when}</small>`;
  }
  return `${addr}<br><small><span class="addr">${cell(r.name)}</span>, resolved ${
    escapeHtml(formatAgeOf(r.lastResolved, nowMs))
  }</small>`;
}

/** The status's keying mode in words (the status keeps its enum: "preshared", "public-key-only"). */
function keyingWords(keying: unknown): unknown {
  if (keying === "preshared") return "preshared key";
  if (keying === "public-key-only") return "no preshared key";
  return keying;
}

function peerCells(p: Json, nowMs: number): string[] {
  const extra = Object.keys(p).filter((k) => !KNOWN_PEER_FIELDS.has(k))
    .map((k) => `<br><small>${escapeHtml(words(k))}: ${valueHtml(k, p[k])}</small>`).join("");
  const hs = typeof p.lastHandshake === "string"
    ? `<span title="${escapeHtml(p.lastHandshake)}">${
      escapeHtml(formatHandshakeAge(p.lastHandshake, nowMs))
    }</span>`
    : escapeHtml(formatHandshakeAge(p.lastHandshake, nowMs));
  return [
    `<code class="key" title="${cell(p.publicKey)}">${cell(p.publicKey)}</code>${
      p.keying ? `<br><small>${cell(keyingWords(p.keying))}</small>` : ""
    }${extra}`,
    endpointCell(p, nowMs),
    Array.isArray(p.allowedIps)
      ? (p.allowedIps.length
        ? p.allowedIps.map((x) => cell(x)).join("<br>")
        : '<span class="empty">(none)</span>')
      : cell(p.allowedIps),
    `${hs}${typeof p.handshakes === "number" ? `<br><small>${p.handshakes} in all</small>` : ""}`,
    bytesCell(p.rxBytes),
    bytesCell(p.txBytes),
    escapeHtml(formatKeepalive(p.persistentKeepalive)),
  ];
}

function tunnelRows(t: unknown, ctx: ViewContext): string {
  if (!isObject(t)) return `<tr><td colspan="9">${cell(t)}</td></tr>`;
  const peers = Array.isArray(t.peers) ? t.peers : [];
  const span = Math.max(1, peers.length);
  const rs = span > 1 ? ` rowspan="${span}"` : "";
  const first = `<td${rs} class="tunnel">${tunnelCell(t, peers.length)}</td>`;
  const traffic = `<td${rs}>${trafficCell(ctx, seriesKey.tunnel(t.name))}</td>`;
  if (peers.length === 0) {
    return `<tr class="tunnel-start">${first}<td colspan="7" class="empty">no peers</td>${traffic}</tr>`;
  }
  return peers.map((p, i) => {
    const cells = isObject(p)
      ? peerCells(p, ctx.nowMs).map((c) => `<td>${c}</td>`).join("")
      : `<td colspan="7">${cell(p)}</td>`;
    const cls = [
      i === 0 ? "tunnel-start" : "",
      isObject(p) && isDown(p, ctx.nowMs) ? "warn" : isObject(p) && isStale(p, ctx.nowMs) ? "stale" : "",
    ].filter(Boolean).join(" ");
    return `<tr${cls ? ` class="${cls}"` : ""}>${i === 0 ? first : ""}${cells}${i === 0 ? traffic : ""}</tr>`;
  }).join("\n");
}

export function tunnelProblems(tunnels: unknown, nowMs: number): Problem[] {
  const down = objects(tunnels).filter((t) => tunnelDown(t, nowMs));
  if (down.length === 0) return [];
  const shown = down.slice(0, 5).map((t) => {
    const p = objects(t.peers).find((p) => isDown(p, nowMs))!;
    const r = isObject(p.resolution) ? p.resolution : undefined;
    // The peer is named by its endpoint, or by the name when it never resolved (then not named twice).
    const label = p.endpoint ? cell(p.endpoint) : r ? cell(r.name) : "";
    const why = r?.error
      ? `${p.endpoint ? `${cell(r.name)} ` : "the name "}does not resolve: ${errorText(r.error)}${
        nextTry(r, nowMs)
      }`
      : `handshake ${escapeHtml(formatHandshakeAge(p.lastHandshake, nowMs))}`;
    return `<b>${cell(t.name)}</b> (peer ${label}: ${why})`;
  });
  return [{
    section: "tunnels",
    html: `${down.length} tunnel${down.length === 1 ? "" : "s"} without a working session: ${
      shown.join(", ")
    }${down.length > shown.length ? ", &hellip;" : ""}`,
  }];
}

/** The inner HTML of the "tunnels" section. */
export function renderTunnels(tunnels: unknown[], ctx: ViewContext): string {
  if (tunnels.length === 0) return '<p class="empty">none</p>';
  const rank = (t: unknown) => isObject(t) && tunnelDown(t, ctx.nowMs) ? 0 : 1;
  const sorted = [...tunnels].sort((a, b) => rank(a) - rank(b));
  const head = [
    "tunnel",
    "peer",
    "endpoint",
    "allowed ips",
    "latest handshake",
    "received",
    "sent",
    "persistent keepalive",
    trafficHeading(ctx),
  ].map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  return `<table id="tunnels-table" class="peers"><thead><tr>${head}</tr></thead><tbody>
${sorted.map((t) => tunnelRows(t, ctx)).join("\n")}
</tbody></table>`;
}
