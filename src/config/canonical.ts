/**
 * A WgConfig written back as wg-quick INI in one canonical spelling: keys in a fixed order and case, IPs in
 * canonical form, host names lowercased, defaults written out, no comments, `source` left out. The same
 * tunnel given in different ways (pipe form or INI, another variable, other comments or key case) therefore
 * gives the same text, which is what the shared tunnel pool keys on (seed 000's cache & refcount).
 *
 * List order is kept: the first Address is the source address a tunnel prefers, so reordering would not be
 * the same tunnel.
 */
import type { WgConfig } from "../wireguard/config.ts";
import { encodeKey } from "../crypto/x25519.ts";
import { hash } from "../crypto/blake2s.ts";
import { toHex } from "../util/bytes.ts";
import { formatHostPort, formatPrefix } from "./ip.ts";
import { REDACTED } from "./redact.ts";
import { formatReserved } from "./reserved.ts";

export interface FormatOptions {
  /** Replace PrivateKey, PresharedKey and Obfs by "[redacted]" (for display). Default false. */
  redact?: boolean;
}

/** Canonical wg-quick INI text. Without `redact` it contains secrets: never log it. */
export function formatWgQuick(cfg: WgConfig, opts: FormatOptions = {}): string {
  const secret = (v: string) => opts.redact ? REDACTED : v;
  const lines = ["[Interface]", `PrivateKey = ${secret(encodeKey(cfg.iface.privateKey))}`];
  if (cfg.iface.addresses.length > 0) {
    lines.push(`Address = ${cfg.iface.addresses.map(formatPrefix).join(", ")}`);
  }
  if (cfg.iface.listenPort !== undefined) lines.push(`ListenPort = ${cfg.iface.listenPort}`);
  lines.push(`MTU = ${cfg.iface.mtu}`);
  if (cfg.iface.dns.length > 0) lines.push(`DNS = ${cfg.iface.dns.join(", ")}`);
  if (cfg.iface.obfs !== undefined) lines.push(`Obfs = ${secret(cfg.iface.obfs)}`);
  for (const p of cfg.peers) {
    lines.push("", "[Peer]", `PublicKey = ${encodeKey(p.publicKey)}`);
    if (p.presharedKey) lines.push(`PresharedKey = ${secret(encodeKey(p.presharedKey))}`);
    lines.push(`AllowedIPs = ${p.allowedIps.map(formatPrefix).join(", ")}`);
    if (p.endpoint) lines.push(`Endpoint = ${formatHostPort(p.endpoint)}`);
    if (p.persistentKeepalive) lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
    if (p.reserved) lines.push(`Reserved = ${formatReserved(p.reserved)}`);
  }
  return lines.join("\n") + "\n";
}

/**
 * Hex BLAKE2s of the canonical text: equal for the same tunnel however it was written. A pool key, not an
 * identifier to show: it is derived from the private key.
 */
export function wgConfigFingerprint(cfg: WgConfig): string {
  return toHex(hash(new TextEncoder().encode(formatWgQuick(cfg))));
}
