/**
 * PROXY protocol headers (HAProxy spec, "The PROXY protocol" versions 1 and 2) that a TCP relay sends to its
 * target before any client byte, so the target learns the real client address.
 */
import type { NetAddr } from "../../net/types.ts";

/** v2 signature: "\r\n\r\n\0\r\nQUIT\n". */
export const PROXY_V2_SIGNATURE = new Uint8Array([
  0x0d,
  0x0a,
  0x0d,
  0x0a,
  0x00,
  0x0d,
  0x0a,
  0x51,
  0x55,
  0x49,
  0x54,
  0x0a,
]);
const PROXY_V2_VERSION_PROXY = 0x21; // version 2, command PROXY
const PROXY_V2_AF_INET_STREAM = 0x11;
const PROXY_V2_AF_INET6_STREAM = 0x21;
const PROXY_V2_UNSPEC = 0x00;

function ipv4Bytes(s: string): number[] | undefined {
  const parts = s.split(".");
  if (parts.length !== 4) return undefined;
  const n = parts.map(Number);
  return n.every((x) => Number.isInteger(x) && x >= 0 && x <= 255) ? n : undefined;
}

function ipv6Bytes(s: string): number[] | undefined {
  if (!s.includes(":")) return undefined;
  const [headS, tailS] = s.includes("::") ? s.split("::") : [s, undefined];
  const groups = (x: string) => (x === "" ? [] : x.split(":"));
  const expandV4 = (g: string[]) => {
    const last = g[g.length - 1];
    if (last?.includes(".")) {
      const o = ipv4Bytes(last);
      if (!o) return undefined;
      g.splice(g.length - 1, 1, ((o[0] << 8) | o[1]).toString(16), ((o[2] << 8) | o[3]).toString(16));
    }
    return g;
  };
  let head = groups(headS);
  let tail = tailS === undefined ? [] : groups(tailS);
  if (tailS === undefined) head = expandV4(head) ?? [];
  else tail = expandV4(tail) ?? [];
  const fill = tailS === undefined ? 0 : 8 - head.length - tail.length;
  if (fill < 0) return undefined;
  const all = [...head, ...new Array(fill).fill("0"), ...tail];
  if (all.length !== 8) return undefined;
  const out: number[] = [];
  for (const g of all) {
    const v = parseInt(g, 16);
    if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
    out.push(v >> 8, v & 0xff);
  }
  return out;
}

/** Maps "::ffff:1.2.3.4" to "1.2.3.4" so v4 clients on a dual-stack socket are reported as TCP4. */
function unmap(host: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(host);
  return m ? m[1] : host;
}

export function proxyV1Header(src: NetAddr, dst: NetAddr): Uint8Array {
  const s = unmap(src.hostname), d = unmap(dst.hostname);
  const v4 = ipv4Bytes(s) && ipv4Bytes(d);
  const v6 = ipv6Bytes(s) && ipv6Bytes(d);
  const line = v4
    ? `PROXY TCP4 ${s} ${d} ${src.port} ${dst.port}\r\n`
    : v6
    ? `PROXY TCP6 ${s} ${d} ${src.port} ${dst.port}\r\n`
    : "PROXY UNKNOWN\r\n";
  return new TextEncoder().encode(line);
}

export function proxyV2Header(src: NetAddr, dst: NetAddr): Uint8Array {
  const s = unmap(src.hostname), d = unmap(dst.hostname);
  const s4 = ipv4Bytes(s), d4 = ipv4Bytes(d);
  const s6 = ipv6Bytes(s), d6 = ipv6Bytes(d);
  let fam = PROXY_V2_UNSPEC;
  let addr: number[] = [];
  if (s4 && d4) {
    fam = PROXY_V2_AF_INET_STREAM;
    addr = [...s4, ...d4];
  } else if ((s6 || s4) && (d6 || d4)) {
    fam = PROXY_V2_AF_INET6_STREAM;
    const v6 = (x: number[] | undefined, v4: number[] | undefined) =>
      x ?? [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255, ...v4!];
    addr = [...v6(s6, s4), ...v6(d6, d4)];
  }
  if (fam !== PROXY_V2_UNSPEC) addr.push(src.port >> 8, src.port & 0xff, dst.port >> 8, dst.port & 0xff);
  const out = new Uint8Array(16 + addr.length);
  out.set(PROXY_V2_SIGNATURE, 0);
  out[12] = PROXY_V2_VERSION_PROXY;
  out[13] = fam;
  out[14] = addr.length >> 8;
  out[15] = addr.length & 0xff;
  out.set(addr, 16);
  return out;
}
