/**
 * The UAPI operations on a Device (wireguard-go device/uapi.go, IpcGetOperation / IpcSetOperation), line by
 * line in wireguard-go's order and with its errno for each refusal. The socket that carries them is
 * src/net/uapi_server.ts; the line syntax is src/wire/uapi.ts.
 *
 * Differences, because wgedge has no kernel interface: `fwmark=0` is accepted and a nonzero fwmark refused
 * with -EOPNOTSUPP (a userspace socket is not marked); an all-zero `private_key` (wireguard-go: "no key") is
 * refused with -EINVAL (a wgedge device always has a key). Endpoints are literal `ip:port` / `[ip6]:port`
 * as in wireguard-go (no host names, no IPv6 zone).
 */
import { formatIpv4, parseIpv4 } from "../wire/ipv4.ts";
import { formatIpv6, parseIpv6 } from "../wire/ipv6.ts";
import {
  keyFromHex,
  keyToHex,
  parseUapiUint,
  UAPI_ERRNO,
  type UapiLine,
  type UapiSet,
} from "../wire/uapi.ts";
import { equalBytes } from "../util/bytes.ts";
import { type BindEndpoint, endpointKey } from "./bind.ts";
import type { Device } from "./device.ts";
import type { Peer } from "./peer.ts";

const ZERO_KEY = new Uint8Array(32);

/** A refusal: the errno for the reply and, for the log, what was wrong (never a key). */
export class UapiError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

const invalid = (message: string) => new UapiError(UAPI_ERRNO.invalid, message);

/** `get=1`: the device, then each peer, in wireguard-go's order. Contains the private and preshared keys. */
export function uapiGet(device: Device): UapiLine[] {
  const out: UapiLine[] = [];
  const add = (key: string, value: string | number) => out.push({ key, value: String(value) });
  add("private_key", keyToHex(device.identity.privateKey));
  if (device.listenPort !== 0) add("listen_port", device.listenPort);
  for (const p of device.peers) {
    add("public_key", keyToHex(p.publicKey));
    add("preshared_key", keyToHex(p.handshake.presharedKey));
    add("protocol_version", 1);
    if (p.endpoint) add("endpoint", endpointKey(p.endpoint));
    const ms = p.stats.lastHandshakeWallMs;
    add("last_handshake_time_sec", Math.floor(ms / 1000));
    add("last_handshake_time_nsec", (ms % 1000) * 1_000_000);
    add("tx_bytes", p.stats.txBytes);
    add("rx_bytes", p.stats.rxBytes);
    add("persistent_keepalive_interval", Math.floor(p.persistentKeepaliveMs / 1000));
    for (const a of device.allowedIpsOf(p)) add("allowed_ip", a);
  }
  return out;
}

/** The peer a set is configuring (wireguard-go ipcSetPeer). A dummy swallows lines without effect. */
interface SetPeer {
  peer?: Peer;
  dummy: boolean;
  created: boolean;
  keepaliveTurnedOn: boolean;
}

/**
 * `set=1`: applies the lines in order and stops at the first refusal, keeping what was applied before it
 * (wireguard-go streams the same way). Resolves the errno for the reply; `log` hears about refusals.
 */
export async function uapiSet(
  device: Device,
  req: UapiSet,
  log: (message: string) => void = () => {},
): Promise<number> {
  const cur: SetPeer = { dummy: false, created: false, keepaliveTurnedOn: false };
  let deviceLines = true;
  try {
    for (const { key, value } of req.lines) {
      if (key === "public_key") {
        deviceLines = false;
        postConfig(device, cur);
        selectPeer(device, cur, value);
      } else if (deviceLines) await deviceLine(device, key, value);
      else peerLine(device, cur, key, value);
    }
    postConfig(device, cur);
    if (req.bad !== undefined) {
      throw new UapiError(UAPI_ERRNO.protocol, "failed to parse a line (no '=')");
    }
    return UAPI_ERRNO.ok;
  } catch (e) {
    if (e instanceof UapiError) {
      log(e.message);
      return e.errno;
    }
    log(`unexpected: ${(e as Error).message}`);
    return UAPI_ERRNO.unknown;
  }
}

async function deviceLine(device: Device, key: string, value: string): Promise<void> {
  switch (key) {
    case "private_key": {
      const sk = keyFromHex(value);
      if (!sk) throw invalid("failed to set private_key: not 64 hex digits");
      if (equalBytes(sk, ZERO_KEY)) throw invalid("failed to set private_key: wgedge needs a key (got zero)");
      device.setPrivateKey(sk);
      return;
    }
    case "listen_port": {
      const port = parseUapiUint(value, 65535);
      if (port === null) throw invalid(`failed to parse listen_port ${JSON.stringify(value)}`);
      try {
        await device.setListenPort(port);
      } catch (e) {
        throw new UapiError(UAPI_ERRNO.portInUse, `failed to set listen_port: ${(e as Error).message}`);
      }
      return;
    }
    case "fwmark": {
      const mark = parseUapiUint(value, 0xffff_ffff);
      if (mark === null) throw invalid(`invalid fwmark ${JSON.stringify(value)}`);
      if (mark !== 0) {
        throw new UapiError(UAPI_ERRNO.notSupported, "fwmark: a userspace tunnel has no socket mark");
      }
      return;
    }
    case "replace_peers":
      if (value !== "true") throw invalid(`failed to set replace_peers, invalid value: ${value}`);
      device.removeAllPeers();
      return;
    default:
      throw invalid(`invalid UAPI device key: ${safeKey(key)}`);
  }
}

function selectPeer(device: Device, cur: SetPeer, value: string): void {
  const pub = keyFromHex(value);
  if (!pub) throw invalid("failed to get peer by public key: not 64 hex digits");
  cur.keepaliveTurnedOn = false;
  // A peer with the device's own key is ignored (wireguard-go's dummy peer).
  cur.dummy = equalBytes(pub, device.identity.publicKey);
  cur.peer = cur.dummy ? undefined : device.lookupPeer(pub);
  cur.created = !cur.dummy && cur.peer === undefined;
  if (cur.created) cur.peer = device.addPeer({ publicKey: pub, allowedIps: [] });
}

function peerLine(device: Device, cur: SetPeer, key: string, value: string): void {
  const peer = cur.dummy ? undefined : cur.peer;
  switch (key) {
    case "update_only":
      if (value !== "true") throw invalid(`failed to set update only, invalid value: ${value}`);
      if (cur.created && peer) {
        device.removePeer(peer);
        cur.peer = undefined;
        cur.dummy = true;
      }
      return;
    case "remove":
      if (value !== "true") throw invalid(`failed to set remove, invalid value: ${value}`);
      if (peer) device.removePeer(peer);
      cur.peer = undefined;
      cur.dummy = true;
      return;
    case "preshared_key": {
      const psk = keyFromHex(value);
      if (!psk) throw invalid("failed to set preshared key: not 64 hex digits");
      if (peer) peer.handshake.presharedKey = psk;
      return;
    }
    case "endpoint": {
      const e = parseUapiEndpoint(value);
      if (!e) throw invalid(`failed to set endpoint ${JSON.stringify(value)}`);
      if (peer) device.setEndpoint(peer, e);
      return;
    }
    case "persistent_keepalive_interval": {
      const secs = parseUapiUint(value, 65535);
      if (secs === null) {
        throw invalid(`failed to set persistent keepalive interval ${JSON.stringify(value)}`);
      }
      if (peer) {
        const old = peer.persistentKeepaliveMs;
        peer.persistentKeepaliveMs = secs * 1000;
        // Turning it on sends a keepalive at once (wireguard-go pkaOn).
        cur.keepaliveTurnedOn = old === 0 && secs !== 0;
      }
      return;
    }
    case "replace_allowed_ips":
      if (value !== "true") throw invalid(`failed to replace allowedips, invalid value: ${value}`);
      if (peer) device.clearAllowedIps(peer);
      return;
    case "allowed_ip": {
      const remove = value.startsWith("-");
      const prefix = parseUapiPrefix(remove ? value.slice(1) : value);
      if (!prefix) throw invalid(`failed to set allowed ip ${JSON.stringify(value)}`);
      if (!peer) return;
      if (remove) device.removeAllowedIp(peer, prefix.addr, prefix.bits);
      else device.addAllowedIp(peer, prefix.addr, prefix.bits);
      return;
    }
    case "protocol_version":
      if (value !== "1") throw invalid(`invalid protocol version: ${value}`);
      return;
    default:
      throw invalid(`invalid UAPI peer key: ${safeKey(key)}`);
  }
}

/** wireguard-go handlePostConfig: a running device starts the peer's traffic at once. */
function postConfig(device: Device, cur: SetPeer): void {
  const peer = cur.dummy ? undefined : cur.peer;
  if (peer && device.started) {
    if (cur.keepaliveTurnedOn) peer.sendKeepalive();
    peer.sendStaged();
  }
  cur.peer = undefined;
  cur.dummy = false;
  cur.created = false;
  cur.keepaliveTurnedOn = false;
}

/** Key names are echoed in logs only when they look like names (a pasted key must not reach a log). */
function safeKey(key: string): string {
  return /^[a-z_]{1,40}$/.test(key) ? key : "(not shown)";
}

/** `1.2.3.4:51820` or `[fd00::1]:51820` (Go netip.ParseAddrPort, without zones). */
export function parseUapiEndpoint(value: string): BindEndpoint | null {
  let host: string, portText: string;
  if (value.startsWith("[")) {
    const close = value.indexOf("]:");
    if (close < 0) return null;
    host = value.slice(1, close);
    portText = value.slice(close + 2);
    const v6 = parseIpv6(host);
    if (!v6) return null;
    host = formatIpv6(v6);
  } else {
    const colon = value.lastIndexOf(":");
    if (colon < 0) return null;
    const v4 = parseIpv4(value.slice(0, colon));
    if (!v4) return null;
    host = formatIpv4(v4);
    portText = value.slice(colon + 1);
  }
  const port = parseUapiUint(portText, 65535);
  return port === null ? null : { address: host, port };
}

/** `10.0.0.0/24` or `fd00::/64` (Go netip.ParsePrefix: the length is required). */
export function parseUapiPrefix(value: string): { addr: Uint8Array; bits: number } | null {
  const slash = value.indexOf("/");
  if (slash < 0) return null;
  const text = value.slice(0, slash);
  const addr = text.includes(":") ? parseIpv6(text) : parseIpv4(text);
  if (!addr) return null;
  const lenText = value.slice(slash + 1);
  if (!/^(0|[1-9][0-9]{0,2})$/.test(lenText)) return null;
  const bits = Number(lenText);
  return bits <= addr.length * 8 ? { addr, bits } : null;
}
