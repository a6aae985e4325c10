/**
 * Target name resolution for mwgp. forward_to hosts may be names and are re-resolved (answers cached for
 * TARGET_CACHE_MS so a handshake burst does not become a DNS burst); the client may use a custom DNS server
 * (`dns`), queried directly with Deno.resolveDns instead of the system resolver, or mwgp's hn2etxt resolver,
 * which reads the server's address from encrypted TXT records of its name.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { aead, NONCE_LEN, TAG_LEN } from "../../crypto/aead.ts";
import { isIpLiteral, osResolver, type Resolver } from "../../net/resolve.ts";
import type { HostPort } from "../../config/mwgp.ts";
import type { UdpAddr } from "./table.ts";
import { joinHostPort } from "../../util/host_port.ts";

export const TARGET_CACHE_MS = 30_000;

export interface TargetResolver {
  /** The address to send to, or null when the name does not resolve. */
  resolve(target: HostPort): Promise<UdpAddr | null>;
}

/**
 * A Resolver that asks one DNS server (A then AAAA) directly. The server may be named by a host name (as mwgp
 * allows); that name is resolved by `system` first.
 */
export function dnsServerResolver(dns: HostPort, system: Resolver = osResolver): Resolver {
  return {
    async resolve(hostname: string): Promise<string[]> {
      if (isIpLiteral(hostname)) return [hostname];
      const ipAddr = isIpLiteral(dns.host) ? dns.host : (await system.resolve(dns.host))[0];
      if (!ipAddr) throw new Error(`cannot resolve the DNS server "${dns.host}"`);
      const nameServer = { ipAddr, port: dns.port };
      const out: string[] = [];
      for (const type of ["A", "AAAA"] as const) {
        try {
          out.push(...await Deno.resolveDns(hostname, type, { nameServer }));
        } catch { /* try the other family */ }
      }
      if (out.length === 0) {
        throw new Error(`cannot resolve "${hostname}" via ${joinHostPort(dns.host, dns.port)}`);
      }
      return out;
    },
  };
}

/** One decrypted hn2etxt record: `hn2etxt addr=HOST time=UNIX` (time optional). */
export interface Hn2etxtRecord {
  addr: string;
  /** Seconds since the epoch; 0 when absent or unparsable (as Go's zero time, older than any). */
  time: number;
}

/** Parses a decrypted record as mwgp does: space-separated key=value tokens; `hn2etxt` and `addr` required. */
export function parseHn2etxtRecord(text: string): Hn2etxtRecord | null {
  const m = new Map<string, string>();
  for (const token of text.split(" ")) {
    const i = token.indexOf("=");
    const [k, v] = i < 0 ? [token, ""] : [token.slice(0, i), token.slice(i + 1)];
    if (k !== "") m.set(k, v);
  }
  if (!m.has("hn2etxt") || !m.has("addr")) return null;
  const t = m.get("time");
  const time = t !== undefined && /^[+-]?\d+$/.test(t) ? Number(t) : 0;
  return { addr: m.get("addr")!, time };
}

/** The ChaCha20-Poly1305 key of an hn2etxt secret: SHA-256 of its UTF-8 bytes. */
export function hn2etxtKey(secret: string): Uint8Array {
  return sha256(new TextEncoder().encode(secret));
}

/**
 * Decrypts one TXT record: unpadded standard base64 of nonce (12) || ChaCha20-Poly1305 ciphertext, no
 * associated data. Null when it is not one of ours.
 */
export function decryptHn2etxt(key: Uint8Array, txt: string): string | null {
  if (!/^[A-Za-z0-9+/]*$/.test(txt) || txt.length % 4 === 1) return null;
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(txt + "=".repeat((4 - (txt.length % 4)) % 4)), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
  if (bytes.length < NONCE_LEN + TAG_LEN) return null;
  const plain = aead().open(key, bytes.subarray(0, NONCE_LEN), bytes.subarray(NONCE_LEN));
  if (!plain) return null;
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(plain);
  } catch {
    return null;
  }
}

/** The newest record among TXT strings (the first of equal times), or null when none decrypts and parses. */
export function newestHn2etxt(key: Uint8Array, txts: string[]): Hn2etxtRecord | null {
  let best: Hn2etxtRecord | null = null;
  for (const txt of txts) {
    const text = decryptHn2etxt(key, txt);
    const rec = text === null ? null : parseHn2etxtRecord(text);
    if (rec && (!best || rec.time > best.time)) best = rec;
  }
  return best;
}

/**
 * mwgp's hn2etxt resolver: the TXT records of the name, asked of `dns`, hold the real host (encrypted with
 * `secret`); that host is then resolved there too (A, then AAAA). The port stays the configured one.
 */
export function hn2etxtResolver(dns: HostPort, secret: string, system: Resolver = osResolver): Resolver {
  const key = hn2etxtKey(secret);
  const direct = dnsServerResolver(dns, system);
  return {
    async resolve(hostname: string): Promise<string[]> {
      const ipAddr = isIpLiteral(dns.host) ? dns.host : (await system.resolve(dns.host))[0];
      if (!ipAddr) throw new Error(`cannot resolve the DNS server "${dns.host}"`);
      const records = await Deno.resolveDns(hostname, "TXT", { nameServer: { ipAddr, port: dns.port } });
      const rec = newestHn2etxt(key, records.map((chunks) => chunks.join("")));
      if (!rec) throw new Error(`no valid hn2etxt record for "${hostname}"`);
      return await direct.resolve(rec.addr);
    },
  };
}

export class CachingTargetResolver implements TargetResolver {
  readonly #cache = new Map<string, { addr: string; at: number }>();

  constructor(
    private readonly resolver: Resolver = osResolver,
    private readonly now: () => number = () => performance.now(),
    private readonly ttlMs = TARGET_CACHE_MS,
  ) {}

  async resolve(target: HostPort): Promise<UdpAddr | null> {
    if (isIpLiteral(target.host)) return { hostname: target.host, port: target.port };
    const hit = this.#cache.get(target.host);
    if (hit && this.now() - hit.at < this.ttlMs) return { hostname: hit.addr, port: target.port };
    try {
      const addrs = await this.resolver.resolve(target.host);
      if (addrs.length === 0) return null;
      this.#cache.set(target.host, { addr: addrs[0], at: this.now() });
      return { hostname: addrs[0], port: target.port };
    } catch {
      // Keep using the last good answer while the name server is down.
      return hit ? { hostname: hit.addr, port: target.port } : null;
    }
  }
}
