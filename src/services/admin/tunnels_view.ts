/**
 * The dashboard's "tunnels" section: one table per tunnel, one row per peer, in the words of `wg show`
 * (latest handshake as an age, transfer in binary units). The status JSON has already been through
 * redactDeep, and the view only reads named fields: a preshared key is shown as the keying mode, never as a
 * value. Status is untyped JSON here, so every field is checked before it is formatted; anything unexpected
 * is shown escaped as it is rather than dropped.
 */
import { REJECT_AFTER_TIME_MS } from "../../wireguard/constants.ts";
import { cell, escapeHtml } from "./html.ts";

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** `0 B`, `512 B`, `1.50 KiB`, `12.3 MiB`, `118 GiB`: three significant digits, like `wg show`'s transfer. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return String(n);
  let unit = 0;
  let v = n;
  while (v >= 1024 && unit < BYTE_UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  if (unit === 0) return `${n} B`;
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

/** `never`, or how long ago an ISO time was in whole seconds (`42 s ago`); a clock step back shows `0 s ago`. */
export function formatHandshakeAge(iso: unknown, nowMs: number): string {
  if (iso === null || iso === undefined || iso === "") return "never";
  const at = typeof iso === "string" ? Date.parse(iso) : NaN;
  if (Number.isNaN(at)) return String(iso);
  return `${Math.max(0, Math.floor((nowMs - at) / 1000))} s ago`;
}

/** `off` for 0/absent (WireGuard's own word), else `every N s`. */
export function formatKeepalive(seconds: unknown): string {
  if (seconds === undefined || seconds === null || seconds === 0) return "off";
  return typeof seconds === "number" ? `every ${seconds} s` : String(seconds);
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The peer fields this view knows, in column order, each with its heading and formatted cell HTML. */
const PEER_COLUMNS: { field: string; heading: string; html(v: unknown, nowMs: number): string }[] = [
  { field: "publicKey", heading: "public key", html: (v) => `<code>${cell(v)}</code>` },
  { field: "endpoint", heading: "endpoint", html: (v) => (v ? cell(v) : '<span class="empty">none</span>') },
  {
    field: "allowedIps",
    heading: "allowed ips",
    html: (v) =>
      Array.isArray(v)
        ? (v.length ? v.map((x) => cell(x)).join("<br>") : '<span class="empty">(none)</span>')
        : cell(v),
  },
  {
    field: "lastHandshake",
    heading: "latest handshake",
    html: (v, now) => {
      const text = escapeHtml(formatHandshakeAge(v, now));
      return typeof v === "string" ? `<span title="${escapeHtml(v)}">${text}</span>` : text;
    },
  },
  { field: "rxBytes", heading: "received", html: bytesCell },
  { field: "txBytes", heading: "sent", html: bytesCell },
  { field: "keying", heading: "keying", html: (v) => cell(v) },
  {
    field: "persistentKeepalive",
    heading: "persistent keepalive",
    html: (v) => escapeHtml(formatKeepalive(v)),
  },
  { field: "handshakes", heading: "handshakes", html: (v) => cell(v) },
];
const KNOWN_PEER_FIELDS = new Set(PEER_COLUMNS.map((c) => c.field));

function bytesCell(v: unknown): string {
  if (typeof v !== "number") return cell(v);
  return `<span title="${v} bytes">${escapeHtml(formatBytes(v))}</span>`;
}

/** A handshake older than REJECT_AFTER_TIME (or none) means no usable session: the row is dimmed. */
function isStale(peer: Json, nowMs: number): boolean {
  const v = peer.lastHandshake;
  if (v === null || v === undefined) return true;
  const at = typeof v === "string" ? Date.parse(v) : NaN;
  return !Number.isNaN(at) && nowMs - at > REJECT_AFTER_TIME_MS;
}

function peerTable(peers: unknown[], nowMs: number): string {
  const objects = peers.filter(isObject);
  // Fields a newer (or careless) status adds are still shown, after the known ones.
  const extra: string[] = [];
  for (const p of objects) {
    for (const k of Object.keys(p)) if (!KNOWN_PEER_FIELDS.has(k) && !extra.includes(k)) extra.push(k);
  }
  const present = PEER_COLUMNS.filter((c) => objects.some((p) => c.field in p));
  const head = [...present.map((c) => c.heading), ...extra].map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const rows = objects.map((p) => {
    const cls = isStale(p, nowMs) ? ' class="stale"' : "";
    const cells = [
      ...present.map((c) => c.html(p[c.field], nowMs)),
      ...extra.map((k) => cell(p[k])),
    ];
    return `<tr${cls}>${cells.map((c) => `<td>${c}</td>`).join("")}</tr>`;
  });
  for (const p of peers) {
    if (!isObject(p)) rows.push(`<tr><td colspan="${present.length || 1}">${cell(p)}</td></tr>`);
  }
  return `<table class="peers"><thead><tr>${head}</tr></thead><tbody>\n${rows.join("\n")}\n</tbody></table>`;
}

function tunnelBlock(t: unknown, nowMs: number): string {
  if (!isObject(t)) return `<p>${cell(t)}</p>`;
  const { name, names, refs, users, addresses, publicKey, listenPort, peers, ...rest } = t;
  const facts: string[] = [];
  if (Array.isArray(addresses) && addresses.length) {
    facts.push(`address ${addresses.map((a) => cell(a)).join(", ")}`);
  }
  if (publicKey !== undefined) facts.push(`public key <code>${cell(publicKey)}</code>`);
  if (listenPort !== undefined) facts.push(`listening on UDP port ${cell(listenPort)}`);
  if (Array.isArray(names) && names.length > 1) {
    facts.push(`also named ${names.slice(1).map((n) => cell(n)).join(", ")}`);
  }
  if (typeof refs === "number") {
    const who = Array.isArray(users) && users.length ? ` (${users.map((u) => cell(u)).join(", ")})` : "";
    facts.push(`held ${refs} time${refs === 1 ? "" : "s"}${who}`);
  }
  for (const [k, v] of Object.entries(rest)) facts.push(`${escapeHtml(k)}: ${cell(v)}`);
  const count = Array.isArray(peers) ? peers.length : 0;
  const heading = `<h3>${name !== undefined ? cell(name) : "(unnamed)"} <small>${count} peer${
    count === 1 ? "" : "s"
  }</small></h3>`;
  const list = facts.length ? `\n<p>${facts.join(" &middot; ")}</p>` : "";
  const table = !Array.isArray(peers)
    ? (peers === undefined ? "" : `\n<p>peers: ${cell(peers)}</p>`)
    : peers.length === 0
    ? '\n<p class="empty">no peers</p>'
    : `\n${peerTable(peers, nowMs)}`;
  return `<div class="tunnel">${heading}${list}${table}</div>`;
}

/** The inner HTML of the "tunnels" section. */
export function renderTunnels(tunnels: unknown[], nowMs: number): string {
  if (tunnels.length === 0) return '<p class="empty">none</p>';
  return tunnels.map((t) => tunnelBlock(t, nowMs)).join("\n");
}
