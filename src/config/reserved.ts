/**
 * `Reserved =` of a [Peer] (and the pipe form's fifth field): the three bytes Cloudflare WARP expects at
 * offsets 1..3 of every WireGuard message (its client id). Two spellings are in use: wgcf/wireproxy write three
 * decimal bytes `a,b,c` (also `[a, b, c]`, as Xray does), sing-box a base64 string of the three bytes (`AQID`).
 * All zero means no reserved bytes (the whitepaper's value), so it is normalized to undefined and the tunnel is
 * the same tunnel (same pool key) as one without the key.
 */
import type { Parsed } from "./ip.ts";

export const RESERVED_EXPECTED =
  "three bytes 0..255 as a,b,c (like 1,2,3) or their base64 form (4 characters, like AQID)";

export function parseReserved(text: string): Parsed<Uint8Array | undefined> {
  const fail: Parsed<Uint8Array | undefined> = { ok: false, expected: RESERVED_EXPECTED };
  const t = text.trim().replace(/^\[(.*)\]$/, "$1").trim();
  let bytes: Uint8Array;
  if (t.includes(",")) {
    const parts = t.split(",").map((s) => s.trim());
    if (parts.length !== 3 || !parts.every((s) => /^[0-9]{1,3}$/.test(s) && Number(s) <= 255)) return fail;
    bytes = Uint8Array.from(parts.map(Number));
  } else {
    if (!/^[A-Za-z0-9+/]{4}$/.test(t)) return fail;
    bytes = Uint8Array.from(atob(t), (c) => c.charCodeAt(0));
  }
  return { ok: true, value: bytes.every((b) => b === 0) ? undefined : bytes };
}

/** The canonical spelling (decimal, as wgcf writes it). */
export function formatReserved(bytes: Uint8Array): string {
  return Array.from(bytes).join(",");
}
