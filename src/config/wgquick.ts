/**
 * wg-quick(8) INI -> WgConfig.
 *
 * Accepted like wg-quick: `[Interface]`/`[Peer]` and keys in any case, `#` comments anywhere on a line (and
 * `;`, the other INI habit), `Address`/`AllowedIPs`/`DNS` as comma lists that may also be repeated, bare
 * addresses meaning a host prefix, `PersistentKeepalive = off`. Keys wg-quick acts on but wgedge does not
 * (routes, hooks, fwmark) are accepted with a warning, so a config written for wg-quick loads unchanged. An
 * unknown key is an error, as in wg(8) and wg-quick(8): `Endpint = ...` must not yield a tunnel without an
 * endpoint. Two extensions: `Obfs` in [Interface], the mwgp obfuscation password, and `Reserved` in [Peer],
 * Cloudflare WARP's three bytes (src/config/reserved.ts).
 *
 * Every problem in the text is collected and thrown together as ConfigErrors; warnings go to the optional
 * `warnings` array. Messages never contain a key, preshared key or password, nor a line that could not be
 * split into `Key = Value` (it may be a pasted key).
 *
 * Because `#` and `;` start a comment, an Obfs password cannot contain them.
 */
import {
  DEFAULT_MTU,
  type IpPrefix,
  type WgConfig,
  type WgInterfaceConfig,
  type WgPeerConfig,
} from "../wireguard/config.ts";
import { decodeKey, publicKey as derivePublicKey } from "../crypto/x25519.ts";
import { equalBytes, toBase64 } from "../util/bytes.ts";
import { ProblemCollector } from "./errors.ts";
import { badKeyError } from "./keys.ts";
import { parseReserved } from "./reserved.ts";
import { formatPrefix, isHostname, normalizeIp, parseHostPort, parsePrefix } from "./ip.ts";

export const MIN_MTU = 576;
export const MAX_MTU = 65535;
/** IPv6 requires every link to carry 1280-byte packets (RFC 8200 section 5). */
export const MIN_IPV6_MTU = 1280;

export { KEY_EXPECTED } from "./keys.ts";
export const PREFIX_EXPECTED = "an IP prefix like 10.0.0.2/32 or fd00::2/128";

/** wg-quick keys that configure the host (routes, hooks) rather than the tunnel: accepted, not acted on. */
const IGNORED_INTERFACE_KEYS: Record<string, string> = {
  table: "Table",
  preup: "PreUp",
  postup: "PostUp",
  predown: "PreDown",
  postdown: "PostDown",
  saveconfig: "SaveConfig",
  fwmark: "FwMark",
};

/** The keys each section acts on (lowercase); a key in neither list nor IGNORED_INTERFACE_KEYS is an error. */
const INTERFACE_KEYS = ["privatekey", "address", "listenport", "mtu", "dns", "obfs"];
const PEER_KEYS = ["publickey", "presharedkey", "allowedips", "endpoint", "persistentkeepalive", "reserved"];
const INTERFACE_KEYS_TEXT =
  "PrivateKey, Address, ListenPort, MTU, DNS, Obfs (or a wg-quick host key such as PostUp)";
const PEER_KEYS_TEXT = "PublicKey, PresharedKey, AllowedIPs, Endpoint, PersistentKeepalive, Reserved";

/** A key name is word characters only; anything else is a malformed line, never echoed. */
const KEY_SYNTAX = /^[A-Za-z][A-Za-z0-9_-]{0,31}$/;
/**
 * Unknown key names are echoed in warnings only when they look like words: a fragment of a pasted key
 * (`yAnz5TF+lX...`) must not reach a log.
 */
const SHOWABLE_KEY = /^[A-Za-z]{1,16}$/;

function unknownKeyName(key: string): string {
  return SHOWABLE_KEY.test(key) ? key : "(name not shown)";
}

interface Line {
  no: number;
  key: string;
  /** Lowercased key for matching. */
  lkey: string;
  value: string;
}

interface PeerDraft {
  headerLine: number;
  publicKey?: Uint8Array;
  publicKeyLine?: number;
  presharedKey?: Uint8Array;
  allowedIps: IpPrefix[];
  endpoint?: { host: string; port: number };
  persistentKeepalive?: number;
  reserved?: Uint8Array;
  reservedLine?: number;
  seen: Map<string, number>;
}

interface InterfaceDraft {
  headerLine: number;
  privateKey?: Uint8Array;
  addresses: IpPrefix[];
  listenPort?: number;
  mtu?: number;
  dns: string[];
  obfs?: string;
  seen: Map<string, number>;
}

/** Strips a `#`/`;` comment and surrounding blanks. */
function stripComment(raw: string): string {
  const cut = raw.search(/[#;]/);
  return (cut < 0 ? raw : raw.slice(0, cut)).trim();
}

function listItems(value: string): string[] {
  // Empty items (a trailing comma) are tolerated like wg-quick does.
  return value.split(",").map((s) => s.trim()).filter((s) => s.length > 0);
}

function parseUint(value: string, min: number, max: number): number | undefined {
  if (!/^[0-9]{1,6}$/.test(value)) return undefined;
  const n = Number(value);
  return n >= min && n <= max ? n : undefined;
}

/**
 * Parses wg-quick INI text. `source` names the file or variable in messages. Throws ConfigErrors listing
 * every problem; pushes warnings onto `warnings`.
 */
export function parseWgQuick(text: string, source: string, warnings: string[] = []): WgConfig {
  const p = new ProblemCollector(warnings);
  let iface: InterfaceDraft | undefined;
  const peers: PeerDraft[] = [];
  let section: "interface" | "peer" | "unknown" | undefined;

  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const no = i + 1;
    const content = stripComment(lines[i]);
    if (content === "") continue;
    if (content.startsWith("[")) {
      const m = /^\[\s*([A-Za-z]+)\s*\]$/.exec(content);
      const name = m?.[1].toLowerCase();
      if (name === "interface") {
        if (iface) {
          p.error({
            source,
            line: no,
            key: "[Interface]",
            expected: `one [Interface] section (the first is at line ${iface.headerLine})`,
          });
          section = "unknown";
        } else {
          iface = { headerLine: no, addresses: [], dns: [], seen: new Map() };
          section = "interface";
        }
      } else if (name === "peer") {
        peers.push({ headerLine: no, allowedIps: [], seen: new Map() });
        section = "peer";
      } else {
        p.error({
          source,
          line: no,
          expected: "a section header [Interface] or [Peer]",
          got: content.slice(0, 40),
        });
        section = "unknown";
      }
      continue;
    }
    const eq = content.indexOf("=");
    const key = eq < 0 ? "" : content.slice(0, eq).trim();
    if (eq >= 0 && /^[A-Za-z]+( [A-Za-z]+){1,3}$/.test(key)) {
      // `Lisen Port = 51820`: words only, so the name can be shown (never the value: it may be a key).
      p.error({
        source,
        line: no,
        key: JSON.stringify(key),
        expected: "a key name without spaces (ListenPort)",
      });
      continue;
    }
    if (eq < 0 || !KEY_SYNTAX.test(key)) {
      p.error({
        source,
        line: no,
        expected: "Key = Value (line not shown: it is not a Key = Value line, and it may hold a private key)",
      });
      continue;
    }
    const line: Line = { no, key, lkey: key.toLowerCase(), value: content.slice(eq + 1).trim() };
    if (section === undefined) {
      p.error({
        source,
        line: no,
        key: unknownKeyName(key),
        expected: "an [Interface] or [Peer] section header before the first key",
      });
    } else if (section === "interface") {
      interfaceKey(p, source, iface!, line);
    } else if (section === "peer") {
      peerKey(p, source, peers[peers.length - 1], line);
    }
    // section "unknown": the header was already reported; its keys would only add noise.
  }

  if (!iface) {
    p.error({ source, key: "[Interface]", expected: "an [Interface] section with a PrivateKey" });
  } else if (!iface.privateKey && !iface.seen.has("privatekey")) {
    p.error({ source, line: iface.headerLine, key: "PrivateKey", expected: "a PrivateKey in [Interface]" });
  }
  checkPeers(p, source, iface, peers);
  // Whole-file checks ran last; report in file order (a stable sort keeps same-line errors as found).
  p.errors.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  p.throwIfAny();

  const ifc: WgInterfaceConfig = {
    privateKey: iface!.privateKey!,
    addresses: iface!.addresses,
    mtu: iface!.mtu ?? DEFAULT_MTU,
    dns: iface!.dns,
  };
  if (iface!.listenPort !== undefined) ifc.listenPort = iface!.listenPort;
  if (iface!.obfs !== undefined) ifc.obfs = iface!.obfs;
  if (ifc.mtu < MIN_IPV6_MTU && ifc.addresses.some((a) => a.address.includes(":"))) {
    p.warn(source, iface!.headerLine, `MTU ${ifc.mtu} is below ${MIN_IPV6_MTU}, the minimum IPv6 needs`);
  }
  return {
    source,
    iface: ifc,
    peers: peers.map((d) => {
      const peer: WgPeerConfig = { publicKey: d.publicKey!, allowedIps: d.allowedIps };
      if (d.presharedKey) peer.presharedKey = d.presharedKey;
      if (d.endpoint) peer.endpoint = d.endpoint;
      if (d.persistentKeepalive) peer.persistentKeepalive = d.persistentKeepalive;
      if (d.reserved) peer.reserved = d.reserved;
      return peer;
    }),
  };
}

/** Warns about a repeated single-valued key; like wg, the later value wins. */
function noteRepeat(p: ProblemCollector, source: string, seen: Map<string, number>, line: Line): void {
  const first = seen.get(line.lkey);
  if (first !== undefined) {
    p.warn(source, line.no, `${line.key} given again (first at line ${first}); the later value is used`);
  }
  seen.set(line.lkey, line.no);
}

function keyValue(p: ProblemCollector, source: string, line: Line, what: string): Uint8Array | undefined {
  try {
    return decodeKey(line.value, what);
  } catch {
    // The value is never echoed: it is (or is meant to be) a secret or at least a key.
    p.errors.push(badKeyError({ source, line: line.no, key: line.key }, line.value));
    return undefined;
  }
}

function prefixes(
  p: ProblemCollector,
  source: string,
  line: Line,
  maskHostBits: boolean,
  into: IpPrefix[],
): void {
  for (const item of listItems(line.value)) {
    const prefix = parsePrefix(item, { maskHostBits });
    if (!prefix) {
      const expected = item.includes("%") ? `${PREFIX_EXPECTED}, without a zone id (%...)` : PREFIX_EXPECTED;
      p.error({ source, line: line.no, key: line.key, expected, got: item });
      continue;
    }
    if (!into.some((x) => x.address === prefix.address && x.prefix === prefix.prefix)) into.push(prefix);
  }
}

function interfaceKey(p: ProblemCollector, source: string, d: InterfaceDraft, line: Line): void {
  const { value } = line;
  switch (line.lkey) {
    case "privatekey":
      noteRepeat(p, source, d.seen, line);
      d.privateKey = keyValue(p, source, line, "PrivateKey");
      return;
    case "address":
      prefixes(p, source, line, false, d.addresses);
      return;
    case "listenport": {
      noteRepeat(p, source, d.seen, line);
      const port = parseUint(value, 0, 65535);
      if (port === undefined) {
        p.error({
          source,
          line: line.no,
          key: line.key,
          expected: "a UDP port 0..65535 (0 = any)",
          got: value,
        });
      } else d.listenPort = port === 0 ? undefined : port;
      return;
    }
    case "mtu": {
      noteRepeat(p, source, d.seen, line);
      const mtu = parseUint(value, MIN_MTU, MAX_MTU);
      if (mtu === undefined) {
        p.error({
          source,
          line: line.no,
          key: line.key,
          expected: `an MTU ${MIN_MTU}..${MAX_MTU}`,
          got: value,
        });
      } else d.mtu = mtu;
      return;
    }
    case "dns":
      for (const item of listItems(value)) {
        // wg-quick: IP literals are resolvers, anything else is a search domain.
        const ip = normalizeIp(item);
        if (ip) d.dns.push(ip);
        else if (isHostname(item)) d.dns.push(item.toLowerCase());
        else {
          p.error({
            source,
            line: line.no,
            key: line.key,
            expected: "DNS server IP addresses or search domains, comma separated",
            got: item,
          });
        }
      }
      return;
    case "obfs":
      noteRepeat(p, source, d.seen, line);
      if (value === "") {
        p.error({ source, line: line.no, key: line.key, expected: "a non-empty obfuscation password" });
      } else d.obfs = value;
      return;
    default:
      if (line.lkey in IGNORED_INTERFACE_KEYS) {
        p.warn(
          source,
          line.no,
          `${
            IGNORED_INTERFACE_KEYS[line.lkey]
          } is a wg-quick host setting; wgedge runs in userspace and ignores it`,
        );
      } else if (isPeerKey(line.lkey)) {
        p.error({ source, line: line.no, key: line.key, expected: `${line.key} inside a [Peer] section` });
      } else {
        p.error({
          source,
          line: line.no,
          key: unknownKeyName(line.key),
          expected: `an [Interface] key: ${INTERFACE_KEYS_TEXT}`,
        });
      }
  }
}

function isPeerKey(lkey: string): boolean {
  return PEER_KEYS.includes(lkey);
}

function peerKey(p: ProblemCollector, source: string, d: PeerDraft, line: Line): void {
  const { value } = line;
  switch (line.lkey) {
    case "publickey":
      noteRepeat(p, source, d.seen, line);
      d.publicKey = keyValue(p, source, line, "PublicKey");
      d.publicKeyLine = line.no;
      return;
    case "presharedkey":
      noteRepeat(p, source, d.seen, line);
      d.presharedKey = keyValue(p, source, line, "PresharedKey");
      return;
    case "allowedips":
      prefixes(p, source, line, true, d.allowedIps);
      return;
    case "endpoint": {
      noteRepeat(p, source, d.seen, line);
      const r = parseHostPort(value);
      if (!r.ok) p.error({ source, line: line.no, key: line.key, expected: r.expected, got: value });
      else d.endpoint = r.value;
      return;
    }
    case "reserved": {
      noteRepeat(p, source, d.seen, line);
      const r = parseReserved(value);
      if (!r.ok) p.error({ source, line: line.no, key: line.key, expected: r.expected, got: value });
      else {
        d.reserved = r.value;
        d.reservedLine = line.no;
      }
      return;
    }
    case "persistentkeepalive": {
      noteRepeat(p, source, d.seen, line);
      if (value.toLowerCase() === "off") {
        d.persistentKeepalive = undefined;
        return;
      }
      const secs = parseUint(value, 0, 65535);
      if (secs === undefined) {
        p.error({
          source,
          line: line.no,
          key: line.key,
          expected: 'seconds 0..65535 or "off"',
          got: value,
        });
      } else d.persistentKeepalive = secs === 0 ? undefined : secs;
      return;
    }
    default:
      if (line.lkey in IGNORED_INTERFACE_KEYS || INTERFACE_KEYS.includes(line.lkey)) {
        p.error({
          source,
          line: line.no,
          key: line.key,
          expected: `${line.key} inside the [Interface] section`,
        });
      } else {
        p.error({
          source,
          line: line.no,
          key: unknownKeyName(line.key),
          expected: `a [Peer] key: ${PEER_KEYS_TEXT}`,
        });
      }
  }
}

function checkPeers(
  p: ProblemCollector,
  source: string,
  iface: InterfaceDraft | undefined,
  peers: PeerDraft[],
): void {
  let ownPublic: Uint8Array | undefined;
  if (iface?.privateKey) ownPublic = derivePublicKey(iface.privateKey);
  const byKey = new Map<string, number>();
  const claimed = new Map<string, PeerDraft>();
  for (const d of peers) {
    if (d.reserved && iface?.obfs !== undefined) {
      // The mwgp obfuscation reads bytes 1..3 as its own flags: the two cannot share a message.
      p.error({
        source,
        line: d.reservedLine,
        key: "Reserved",
        expected: "no Reserved bytes on a tunnel with Obfs (mwgp obfuscation uses those bytes itself)",
      });
    }
    if (!d.publicKey) {
      if (!d.seen.has("publickey")) {
        p.error({ source, line: d.headerLine, key: "PublicKey", expected: "a PublicKey in every [Peer]" });
      }
      continue;
    }
    const k = toBase64(d.publicKey);
    const first = byKey.get(k);
    if (first !== undefined) {
      p.error({
        source,
        line: d.publicKeyLine,
        key: "PublicKey",
        expected: `a different key for each peer (the same key is used by the peer at line ${first})`,
      });
    } else byKey.set(k, d.headerLine);
    if (ownPublic && equalBytes(ownPublic, d.publicKey)) {
      p.warn(source, d.publicKeyLine, "PublicKey is this interface's own key; WireGuard ignores such a peer");
    }
    for (const a of d.allowedIps) {
      const text = formatPrefix(a);
      const earlier = claimed.get(text);
      if (earlier !== undefined && earlier !== d) {
        // wg(8) moves a prefix to the last peer that lists it; the model says so explicitly.
        p.warn(
          source,
          d.headerLine,
          `AllowedIPs ${text} is also claimed by the peer at line ${earlier.headerLine}; the later peer gets it`,
        );
        earlier.allowedIps = earlier.allowedIps.filter((x) => formatPrefix(x) !== text);
      }
      claimed.set(text, d);
    }
  }
}
