/**
 * mwgp configs (JSON5, the public mwgp project's format; spec: shared/spec/mwgp.md) and the env section that
 * lets `wgedge serve` run them: MWGP_SERVER_CONFIG, MWGP_CLIENT_CONFIG (inline JSON5 or a path),
 * MWGP_CACHE_FILE, MWGP_NO_CACHE and MWGP_SKIP_LOAD_CACHE. Every problem names the file or variable, the JSON path (and line for syntax errors) and
 * what was expected; all problems of one file are reported together. Keys and passwords are never echoed.
 */
import JSON5 from "json5";
import { ConfigError, ConfigErrors, ProblemCollector } from "./errors.ts";
import type { LoadContext } from "./context.ts";
import { readConfigFile } from "./source.ts";
import { decodeKey, publicKey } from "../crypto/x25519.ts";
import { describeBadKey } from "./keys.ts";
import { json5PathLines } from "./json_lines.ts";
import { joinHostPort } from "../util/host_port.ts";

/** Source validation level for transport packets (csvl/ssvl). */
export enum SourceValidation {
  Default = 0,
  None = 1,
  Ip = 2,
  IpAndPort = 3,
}

export interface HostPort {
  /** Host name or literal IP (IPv6 without brackets); "" = unspecified. */
  host: string;
  port: number;
}

export interface MwgpPeerConfig {
  /** The client's public key; absent for the server's fallback peer. */
  publicKey?: Uint8Array;
  /** Where the WireGuard server for this peer listens; host already defaulted from the server's `address`. */
  forwardTo: HostPort;
  /**
   * Source validation for this peer's sessions: the peer's own `csvl`/`ssvl`, else its server's, else the
   * config's top level (a wgedge extension for the server; Go reads them per server and per peer only).
   * Default (0) or absent when none is set: the forwarder then applies the leg's default.
   */
  csvl?: SourceValidation;
  ssvl?: SourceValidation;
}

export interface MwgpServerEntry {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
  peers: MwgpPeerConfig[];
}

interface MwgpCommon {
  listen: HostPort;
  timeoutSec: number;
  maxPacketSize: number;
  /** Client-side and server-side source validation. */
  csvl: SourceValidation;
  ssvl: SourceValidation;
  /** Obfuscation password; undefined = off. Secret. */
  obfs?: string;
  cacheFilePath?: string;
  /** Bound on forwarding entries (wgedge extension `max_entries`). */
  maxEntries: number;
  /** File or variable the config came from (for messages). */
  source: string;
}

export interface MwgpServerConfig extends MwgpCommon {
  mode: "server";
  servers: MwgpServerEntry[];
}

export interface MwgpClientConfig extends MwgpCommon {
  mode: "client";
  server: HostPort;
  serverPublicKey: Uint8Array;
  clientPublicKey: Uint8Array;
  /** Custom DNS server for resolving `server`: `dns` (port 53 when absent) or `resolver` `dns+udp://...`. */
  dns?: HostPort;
  /**
   * `resolver` `hn2etxt+udp://host:port?secret=S`: the server's address comes from encrypted TXT records of
   * its name, asked of `dns`. The secret keys them (redacted in check-config by its name).
   */
  hn2etxtSecret?: string;
}

export const MWGP_DEFAULT_TIMEOUT_SEC = 60;
export const MWGP_DEFAULT_MAX_PACKET_SIZE = 65536;
export const MWGP_DEFAULT_MAX_ENTRIES = 65536;

type Json = Record<string, unknown>;

/** Parses `host:port`, `:port`, `[v6]:port`. Returns null when malformed. */
export function parseHostPort(text: string, allowPortZero = false): HostPort | null {
  const s = text.trim();
  let host: string, portText: string;
  const v6 = /^\[([^\]]*)\]:(\d+)$/.exec(s);
  if (v6) {
    host = v6[1];
    portText = v6[2];
    if (!host.includes(":")) return null;
  } else {
    const i = s.lastIndexOf(":");
    if (i < 0) return null;
    host = s.slice(0, i);
    portText = s.slice(i + 1);
    if (host.includes(":")) return null; // a bare IPv6 address needs brackets
  }
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < (allowPortZero ? 0 : 1) || port > 65535) return null;
  if (host !== "" && !/^[A-Za-z0-9.\-_:%]+$/.test(host)) return null;
  return { host, port };
}

export function formatHostPort(hp: HostPort): string {
  return joinHostPort(hp.host, hp.port);
}

class Reader {
  readonly #lines: Map<string, number>;

  constructor(readonly p: ProblemCollector, readonly source: string, readonly text: string) {
    this.#lines = json5PathLines(text);
  }

  /**
   * The line of `path` (`servers[1].peers[0].forward_to`), else of the nearest enclosing value that is in the
   * text: a missing required key points at the object that lacks it.
   */
  lineOf(path: string): number | undefined {
    for (let p = path; p !== ""; p = p.replace(/(\.[^.[]*|\[\d+\])$/, "")) {
      const line = this.#lines.get(p);
      if (line !== undefined) return line;
      if (!/(\.[^.[]*|\[\d+\])$/.test(p)) break;
    }
    return undefined;
  }

  err(path: string, expected: string, got?: string): void {
    this.p.error({ source: this.source, line: this.lineOf(path), key: path, expected, got });
  }

  str(obj: Json, key: string, path: string, required: boolean): string | undefined {
    const v = obj[key];
    if (v === undefined || v === null) {
      if (required) this.err(path, "a string (required)");
      return undefined;
    }
    if (typeof v !== "string") {
      this.err(path, "a string", JSON.stringify(v));
      return undefined;
    }
    return v;
  }

  num(obj: Json, key: string, path: string, fallback: number, min: number, max: number): number {
    const v = obj[key];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      this.err(path, `an integer ${min}..${max}`, JSON.stringify(v));
      return fallback;
    }
    return v;
  }

  /** A base64 32-byte key; the value is never echoed. */
  key(obj: Json, k: string, path: string, required: boolean): Uint8Array | undefined {
    const v = this.str(obj, k, path, required);
    if (v === undefined) return undefined;
    try {
      return decodeKey(v.trim(), k);
    } catch {
      this.err(
        path,
        `a base64-encoded 32-byte key (44 characters ending in "="); got ${describeBadKey(v)}, not shown`,
      );
      return undefined;
    }
  }

  hostPort(
    obj: Json,
    k: string,
    path: string,
    required: boolean,
    allowPortZero = false,
  ): HostPort | undefined {
    const v = this.str(obj, k, path, required);
    if (v === undefined) return undefined;
    const hp = parseHostPort(v, allowPortZero);
    if (!hp) this.err(path, 'an address "host:port", ":port" or "[v6]:port"', v);
    return hp ?? undefined;
  }

  unknownKeys(obj: Json, known: string[], path: string): void {
    for (const k of Object.keys(obj)) {
      if (!known.includes(k)) {
        this.p.warn(this.source, this.lineOf(`${path}${k}`), `${path}${k}: unknown key, ignored`);
      }
    }
  }
}

function parseJson5(text: string, source: string): Json {
  let v: unknown;
  try {
    v = JSON5.parse(text);
  } catch (e) {
    const err = e as { lineNumber?: number; message?: string };
    throw new ConfigError({
      source,
      line: err.lineNumber,
      expected: `valid JSON5 (${String(err.message ?? e).replace(/^JSON5: /, "")})`,
    });
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ConfigError({ source, expected: "a JSON5 object { ... }" });
  }
  return v as Json;
}

function common(r: Reader, o: Json, listenRequired: boolean): MwgpCommon {
  // Port 0 (any free port) is accepted for listen: tests and ad-hoc runs read the port from the status.
  const listen = r.hostPort(o, "listen", "listen", listenRequired, true) ?? { host: "", port: 0 };
  const timeout = o.timeout;
  let timeoutSec = MWGP_DEFAULT_TIMEOUT_SEC;
  if (timeout !== undefined && timeout !== null) {
    if (typeof timeout !== "number" || !Number.isFinite(timeout)) {
      r.err("timeout", "a number of seconds", String(timeout));
    } else if (timeout > 0) timeoutSec = timeout;
  }
  const obfs = r.str(o, "obfs", "obfs", false);
  const cache = r.str(o, "cache_file_path", "cache_file_path", false);
  return {
    listen,
    timeoutSec,
    maxPacketSize: maxPacketSize(r, o),
    csvl: r.num(o, "csvl", "csvl", 0, 0, 3),
    ssvl: r.num(o, "ssvl", "ssvl", 0, 0, 3),
    obfs: obfs ? obfs : undefined,
    cacheFilePath: cache ? cache : undefined,
    maxEntries: r.num(o, "max_entries", "max_entries", MWGP_DEFAULT_MAX_ENTRIES, 16, 1 << 22),
    source: r.source,
  };
}

/**
 * `max_packet_size` as Go reads it: any value > 0 is the receive buffer size, <= 0 (or absent) the default.
 * More than a UDP datagram can carry changes nothing, so it is capped at the default.
 */
function maxPacketSize(r: Reader, o: Json): number {
  const v = o.max_packet_size;
  if (v === undefined || v === null) return MWGP_DEFAULT_MAX_PACKET_SIZE;
  if (typeof v !== "number" || !Number.isInteger(v)) {
    r.err("max_packet_size", "an integer (bytes; <= 0 means the default 65536)", JSON.stringify(v));
    return MWGP_DEFAULT_MAX_PACKET_SIZE;
  }
  return v <= 0 ? MWGP_DEFAULT_MAX_PACKET_SIZE : Math.min(v, MWGP_DEFAULT_MAX_PACKET_SIZE);
}

/** The first level that is set (non-zero), else Default. */
function firstLevel(...levels: SourceValidation[]): SourceValidation {
  return levels.find((l) => l !== SourceValidation.Default) ?? SourceValidation.Default;
}

/** Reads a privkey_file: its first 44 bytes (trailing newline fine), like systemd's PrivateKeyFile=. */
function readPrivkeyFile(r: Reader, path: string, where: string): Uint8Array | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    r.err(where, `a readable key file (${(e as Error).name})`, path);
    return undefined;
  }
  try {
    return decodeKey(text.slice(0, 44).trim(), "privkey_file");
  } catch {
    r.err(where, "a file starting with a base64-encoded 32-byte key; content not shown", path);
    return undefined;
  }
}

/** Parses a server config (JSON5 text). Throws ConfigErrors listing every problem. */
export function parseMwgpServerConfig(
  text: string,
  source: string,
  warnings: string[] = [],
): MwgpServerConfig {
  const p = new ProblemCollector(warnings);
  const o = parseJson5(text, source);
  const r = new Reader(p, source, text);
  r.unknownKeys(
    o,
    [
      "listen",
      "timeout",
      "max_packet_size",
      "servers",
      "csvl",
      "ssvl",
      "obfs",
      "cache_file_path",
      "max_entries",
    ],
    "",
  );
  const base = common(r, o, true);
  const servers: MwgpServerEntry[] = [];
  if (!Array.isArray(o.servers) || o.servers.length === 0) {
    r.err("servers", "a non-empty array of servers");
  } else {
    o.servers.forEach((sv, i) => {
      const sp = `servers[${i}]`;
      if (typeof sv !== "object" || sv === null || Array.isArray(sv)) return r.err(sp, "an object");
      const s = sv as Json;
      r.unknownKeys(s, ["privkey", "privkey_file", "address", "peers", "csvl", "ssvl"], `${sp}.`);
      const serverCsvl = r.num(s, "csvl", `${sp}.csvl`, 0, 0, 3) as SourceValidation;
      const serverSsvl = r.num(s, "ssvl", `${sp}.ssvl`, 0, 0, 3) as SourceValidation;
      let privateKey: Uint8Array | undefined;
      const hasKey = s.privkey !== undefined && s.privkey !== null;
      const hasFile = s.privkey_file !== undefined && s.privkey_file !== null;
      if (hasKey === hasFile) {
        r.err(sp, 'exactly one of "privkey" or "privkey_file"');
      } else if (hasKey) {
        privateKey = r.key(s, "privkey", `${sp}.privkey`, true);
      } else {
        const f = r.str(s, "privkey_file", `${sp}.privkey_file`, true);
        if (f !== undefined) privateKey = readPrivkeyFile(r, f, `${sp}.privkey_file`);
      }
      const address = r.str(s, "address", `${sp}.address`, false) ?? "";
      const peers: MwgpPeerConfig[] = [];
      let fallbacks = 0;
      if (!Array.isArray(s.peers) || s.peers.length === 0) {
        r.err(`${sp}.peers`, "a non-empty array of peers");
      } else {
        s.peers.forEach((pv, j) => {
          const pp = `${sp}.peers[${j}]`;
          if (typeof pv !== "object" || pv === null || Array.isArray(pv)) return r.err(pp, "an object");
          const peer = pv as Json;
          r.unknownKeys(peer, ["pubkey", "forward_to", "csvl", "ssvl"], `${pp}.`);
          const csvl = firstLevel(r.num(peer, "csvl", `${pp}.csvl`, 0, 0, 3), serverCsvl, base.csvl);
          const ssvl = firstLevel(r.num(peer, "ssvl", `${pp}.ssvl`, 0, 0, 3), serverSsvl, base.ssvl);
          let pub: Uint8Array | undefined;
          if (peer.pubkey === "") {
            r.err(`${pp}.pubkey`, "a base64 public key, or no pubkey key at all for a fallback peer");
          } else if (peer.pubkey !== undefined && peer.pubkey !== null) {
            pub = r.key(peer, "pubkey", `${pp}.pubkey`, true);
          } else if (++fallbacks === 2) r.err(pp, "at most one fallback peer (without pubkey) per server");
          const fwd = r.hostPort(peer, "forward_to", `${pp}.forward_to`, true);
          if (fwd) {
            const host = fwd.host || address.replace(/^\[(.*)\]$/, "$1");
            if (!host) {
              r.err(
                `${pp}.forward_to`,
                'a host (or a server "address" to combine with ":port")',
                formatHostPort(fwd),
              );
            } else peers.push({ publicKey: pub, forwardTo: { host, port: fwd.port }, csvl, ssvl });
          }
        });
      }
      if (privateKey) servers.push({ privateKey, publicKey: publicKey(privateKey), peers });
    });
  }
  p.throwIfAny();
  return { ...base, mode: "server", servers };
}

/** Parses a client config (JSON5 text). Throws ConfigErrors listing every problem. */
export function parseMwgpClientConfig(
  text: string,
  source: string,
  warnings: string[] = [],
): MwgpClientConfig {
  const p = new ProblemCollector(warnings);
  const o = parseJson5(text, source);
  const r = new Reader(p, source, text);
  r.unknownKeys(
    o,
    [
      "server",
      "listen",
      "timeout",
      "max_packet_size",
      "server_pubkey",
      "client_pubkey",
      "dns",
      "resolver",
      "obfs",
      "cache_file_path",
      "csvl",
      "ssvl",
      "max_entries",
    ],
    "",
  );
  const base = common(r, o, true);
  const server = r.hostPort(o, "server", "server", true);
  if (server && !server.host) r.err("server", "a host in the server address", formatHostPort(server));
  const serverPublicKey = r.key(o, "server_pubkey", "server_pubkey", true);
  const clientPublicKey = r.key(o, "client_pubkey", "client_pubkey", true);
  const resolver = resolverOf(r, o);
  p.throwIfAny();
  return {
    ...base,
    mode: "client",
    server: server!,
    serverPublicKey: serverPublicKey!,
    clientPublicKey: clientPublicKey!,
    ...resolver,
  };
}

/** DNS servers listen on this port unless `dns` / `resolver` names another. */
export const DNS_PORT = 53;

/**
 * A DNS server address as Go's client takes it: `host`, `host:port`, `[v6]` or `[v6]:port` (also a bare IPv6
 * literal); the port defaults to 53. Null when malformed.
 */
export function parseDnsServer(text: string): HostPort | null {
  const s = text.trim();
  if (s.includes(":") && !s.startsWith("[") && s.indexOf(":") !== s.lastIndexOf(":")) {
    return /^[0-9A-Fa-f:.]+$/.test(s) ? { host: s, port: DNS_PORT } : null; // a bare IPv6 literal
  }
  const bracketed = /^\[([^\]]+)\]$/.exec(s);
  if (bracketed) return bracketed[1].includes(":") ? { host: bracketed[1], port: DNS_PORT } : null;
  const hp = s.includes(":") ? parseHostPort(s) : parseHostPort(`${s}:${DNS_PORT}`);
  return hp && hp.host ? hp : null;
}

/**
 * The client's custom resolver: Go's `resolver` (`dns+udp://host[:port]`, or `hn2etxt+udp://host[:port]?secret=S`
 * for addresses in encrypted TXT records) or its deprecated `dns` (`host[:port]`, meaning
 * `dns+udp://host[:port]`); both at once is an error, as in Go.
 */
function resolverOf(r: Reader, o: Json): { dns?: HostPort; hn2etxtSecret?: string } {
  const dns = r.str(o, "dns", "dns", false)?.trim() || undefined;
  const resolver = r.str(o, "resolver", "resolver", false)?.trim() || undefined;
  if (dns && resolver) {
    r.err("resolver", 'either "resolver" or the older "dns", not both (as mwgp)');
    return {};
  }
  if (dns) {
    const hp = parseDnsServer(dns);
    if (!hp) r.err("dns", 'a DNS server "ip", "ip:port" or "[v6]:port" (port 53 by default)', dns);
    return hp ? { dns: hp } : {};
  }
  if (!resolver) return {};
  const expected = 'a resolver URL "dns+udp://host:port" or "hn2etxt+udp://host:port?secret=..."';
  const m = /^(dns|hn2etxt)\+udp:\/\/([^/?#]*)\/?(?:\?([^#]*))?$/.exec(resolver);
  const hp = m ? parseDnsServer(m[2]) : null;
  if (!m || !hp) {
    // Only the scheme is shown: the query of an hn2etxt URL holds its secret.
    r.err("resolver", `${expected} (port 53 by default)`, resolver.split("?")[0]);
    return {};
  }
  if (m[1] === "dns") return { dns: hp };
  return { dns: hp, hn2etxtSecret: new URLSearchParams(m[3] ?? "").get("secret") ?? "" };
}

/** Content when it is inline JSON5 (starts with `{`), else the file the value names. */
async function textOf(value: string, sourceName: string): Promise<{ text: string; source: string }> {
  const t = value.trim();
  if (t.startsWith("{")) return { text: value, source: sourceName };
  return { text: await readConfigFile(t, sourceName), source: t };
}

export async function loadMwgpServerConfig(value: string, sourceName: string, warnings: string[] = []) {
  const { text, source } = await textOf(value, sourceName);
  return parseMwgpServerConfig(text, source, warnings);
}

export async function loadMwgpClientConfig(value: string, sourceName: string, warnings: string[] = []) {
  const { text, source } = await textOf(value, sourceName);
  return parseMwgpClientConfig(text, source, warnings);
}

/** The env section: which mwgp instances `wgedge serve` starts, and the cache file override. */
export interface MwgpSection {
  server?: MwgpServerConfig;
  client?: MwgpClientConfig;
  /** MWGP_CACHE_FILE (lower precedence than a config's cache_file_path). */
  cacheFile?: string;
  /** MWGP_NO_CACHE: neither read nor write the cache file. */
  noCache?: boolean;
  /** MWGP_SKIP_LOAD_CACHE: start with an empty table (the cache is still written). */
  skipLoadCache?: boolean;
}

export const MWGP_ENV = [
  "MWGP_SERVER_CONFIG",
  "MWGP_CLIENT_CONFIG",
  "MWGP_CACHE_FILE",
  "MWGP_NO_CACHE",
  "MWGP_SKIP_LOAD_CACHE",
] as const;

/**
 * A boolean variable as mwgp reads MWGP_NO_CACHE / MWGP_SKIP_LOAD_CACHE (viper, i.e. Go's strconv.ParseBool):
 * 1, t, T, TRUE, true, True are true; 0, f, F, FALSE, false, False and empty are false. Any other value is
 * false there too; here it is false with a warning, so a typo does not pass unnoticed.
 */
export function mwgpEnvBool(
  name: string,
  value: string | undefined,
  warnings: string[],
  source = name,
): boolean {
  const v = value ?? "";
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (!["", "0", "f", "F", "FALSE", "false", "False"].includes(v)) {
    warnings.push(
      `${source}: ${name}: expected a boolean (1/0, true/false), got ${JSON.stringify(v)}; ignored`,
    );
  }
  return false;
}

/** Reads the mwgp section from an env map; problems in both configs are reported together. */
export async function loadMwgpSection(
  env: Record<string, string | undefined>,
  warnings: string[] = [],
): Promise<MwgpSection> {
  const p = new ProblemCollector(warnings);
  const out: MwgpSection = {};
  const sv = env.MWGP_SERVER_CONFIG?.trim();
  const cl = env.MWGP_CLIENT_CONFIG?.trim();
  if (sv) {
    try {
      out.server = await loadMwgpServerConfig(sv, "MWGP_SERVER_CONFIG", warnings);
    } catch (e) {
      p.capture(() => {
        throw e;
      });
    }
  }
  if (cl) {
    try {
      out.client = await loadMwgpClientConfig(cl, "MWGP_CLIENT_CONFIG", warnings);
    } catch (e) {
      p.capture(() => {
        throw e;
      });
    }
  }
  const cache = env.MWGP_CACHE_FILE?.trim();
  if (cache) out.cacheFile = cache;
  if (mwgpEnvBool("MWGP_NO_CACHE", env.MWGP_NO_CACHE, warnings)) out.noCache = true;
  if (mwgpEnvBool("MWGP_SKIP_LOAD_CACHE", env.MWGP_SKIP_LOAD_CACHE, warnings)) out.skipLoadCache = true;
  p.throwIfAny();
  return out;
}

/**
 * The loader section for src/config/mod.ts: reads MWGP_SERVER_CONFIG / MWGP_CLIENT_CONFIG / MWGP_CACHE_FILE
 * / MWGP_NO_CACHE / MWGP_SKIP_LOAD_CACHE through the LoadContext (environment or env file), so `wgedge serve` starts mwgp when they are set.
 */
export async function loadMwgpConfigSection(ctx: LoadContext): Promise<{ mwgp?: MwgpSection }> {
  const server = ctx.envSetting("MWGP_SERVER_CONFIG");
  const client = ctx.envSetting("MWGP_CLIENT_CONFIG");
  const cache = ctx.envSetting("MWGP_CACHE_FILE");
  if (!server && !client) return {};
  const out: MwgpSection = {};
  const problems: ConfigError[] = [];
  const lineOfSetting = (
    s: { source: string; line?: number },
  ) => (s.line !== undefined ? `${s.source}:${s.line}` : s.source);
  for (const [setting, mode] of [[server, "server"], [client, "client"]] as const) {
    if (!setting) continue;
    const found: string[] = [];
    try {
      // Named by the variable: an inline value's errors and warnings are then pointed at its env-file line.
      if (mode === "server") {
        out.server = await loadMwgpServerConfig(setting.value, setting.name, found);
      } else out.client = await loadMwgpClientConfig(setting.value, setting.name, found);
    } catch (e) {
      problems.push(...ctx.inEnvFile(setting, e));
    } finally {
      ctx.addWarningsOf(setting, found);
    }
  }
  if (problems.length > 0) throw new ConfigErrors(problems);
  if (cache) out.cacheFile = cache.value.trim();
  for (
    const [name, key] of [["MWGP_NO_CACHE", "noCache"], ["MWGP_SKIP_LOAD_CACHE", "skipLoadCache"]] as const
  ) {
    const s = ctx.envSetting(name);
    if (s && mwgpEnvBool(name, s.value, ctx.warnings, lineOfSetting(s))) out[key] = true;
  }
  return { mwgp: out };
}
