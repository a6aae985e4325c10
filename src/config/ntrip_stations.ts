/**
 * The NTRIP relay stations (seed 000's config.json): a JSON array of station objects with the seed's field
 * names, from NTRIP_STATIONS (inline JSON or the path of a file; flag --ntrip-stations, `wgedge ntrip relay
 * -c stations.json`). Every problem names the file (or variable), the line of the station or field, the field
 * and what was expected; values of secret fields (src_pass, dst_pass, proxy credentials, wg_config) are never
 * echoed. Unknown fields are warned about and ignored (real files carry extra fields); duplicate ids are
 * errors.
 *
 * Fields (shared/spec/ntrip.md):
 *   id                        station name (letters, digits, _ . : -), unique
 *   enable                    default true; false = shown as DISABLED, never connected
 *   initial_delay             seconds before the first connection (default 0)
 *   src_host src_port src_mount src_user src_pass src_ntrip_version (1 | 2 | auto, default auto = 2 with a
 *       fall back to 1) src_tls src_proxy         the caster pulled from (as an NTRIP client)
 *   dst_host dst_port dst_mount dst_user dst_pass dst_ntrip_version (1 | 2, default 1) dst_tls dst_proxy
 *                                                 the caster pushed to (as an NTRIP server)
 *   wg_config                 the station's tunnel: pipe form PrivateKey|PublicKey|Endpoint|ClientIP,
 *                             inline wg-quick INI, or the path of a wg-quick file (relative to the stations file)
 *   lat lon alt               position sent as GGA (degrees, metres); GGA is off without lat/lon
 *   gga_interval              seconds between GGA sentences (default 10, 0 = off)
 *   gga_talker                GP (default) or GN
 *   format                    rtcm3 (default: forward whole CRC-valid frames) or raw (bytes as they come)
 * wgedge's own additions:
 *   src_via dst_via           auto (default: the tunnel when wg_config is set, else the side's proxy, else
 *                             direct), wg, proxy or direct: a side that must not use the station's tunnel
 *
 * Proxies: `host:port`, `host:port:user:pass` or `socks5://[user:pass@]host:port` (SOCKS5, RFC 1928).
 *
 * TLS (src_tls / dst_tls): the side's NTRIP session runs over TLS whatever its egress (tunnel, SOCKS5,
 * direct); the server name is the host, its certificate is verified against the default roots
 * (src/net/tls.ts) plus the CA certificates of the PEM file NTRIP_TLS_CA_FILE names (a private caster's CA).
 *
 * NTRIP_SHARD=i/n (1 <= i <= n) keeps only the stations whose id hashes to shard i: xxh64(UTF-8 id, seed 0)
 * mod n = i - 1, so n machines can share one stations file, each with its own i.
 */
import { X509Certificate } from "node:crypto";
import type { WgConfig } from "../wireguard/config.ts";
import { xxh64 } from "../crypto/xxh64.ts";
import { parseSocks5Url } from "../net/socks5.ts";
import type { LoadContext, Setting } from "./context.ts";
import { ConfigError, type ConfigErrorInit } from "./errors.ts";
import { parseHost } from "./relay.ts";
import { isSecretField } from "../util/secret.ts";
import {
  isWorldAccessible,
  MAX_CONFIG_FILE_BYTES,
  parseWgText,
  readConfigFile,
  worldAccessibleWarning,
} from "./source.ts";
import { arrayElementLines, type JsonElementLines, syntaxErrorLine } from "./json_lines.ts";

export type NtripVersionChoice = 1 | 2 | "auto";
export type StationFormat = "rtcm3" | "raw";
/** How a side leaves the machine: auto = tunnel, else proxy, else direct. */
export type StationVia = "auto" | "wg" | "proxy" | "direct";

export interface StationProxy {
  host: string;
  port: number;
  username?: string;
  password?: string;
}

/** One side of a station: the caster it pulls from (source) or pushes to (destination). */
export interface StationSide {
  host: string;
  port: number;
  /** Without its leading slash. */
  mount: string;
  user?: string;
  password?: string;
  version: NtripVersionChoice;
  /** The session runs over TLS (server name = host, certificate verified against the roots + tlsCa). */
  tls: boolean;
  /** NTRIP_TLS_CA_FILE's certificates, on TLS sides when the variable is set. */
  tlsCa?: StationTlsCa;
  proxy?: StationProxy;
  via: StationVia;
}

/**
 * Extra CA certificates every TLS side trusts besides the default roots (NTRIP_TLS_CA_FILE), one object
 * shared by all sides. The certificates are a getter, not a field: a station's key (JSON), check-config and status
 * show the file and the digest of its certificates, so a changed file restarts the TLS stations on reload
 * without 300 copies of the PEM text in every key and listing.
 */
export class StationTlsCa {
  readonly #certs: string[];

  constructor(readonly file: string, certs: string[], readonly digest: string) {
    this.#certs = certs;
  }

  /** The certificates, PEM, in file order. */
  get certs(): string[] {
    return this.#certs;
  }
}

export interface StationPosition {
  latDeg: number;
  lonDeg: number;
  altM: number;
}

export interface StationConfig {
  id: string;
  enable: boolean;
  initialDelaySec: number;
  source: StationSide;
  destination: StationSide;
  /** The station's tunnel (shared through the pool with every station of the same configuration). */
  wgConfig?: WgConfig;
  /** GGA is sent when set and ggaIntervalSec > 0. */
  position?: StationPosition;
  ggaIntervalSec: number;
  ggaTalker: "GP" | "GN";
  format: StationFormat;
  /** Where the station is defined (`stations.json:12`), for messages. */
  origin: string;
}

export interface NtripStationsConfig {
  stations: StationConfig[];
  /** The file path, or NTRIP_STATIONS/--ntrip-stations when inline. */
  source: string;
  /** The stations file, when they come from one (it is watched: a change reloads like SIGHUP). */
  file?: string;
  /** NTRIP_SHARD: this machine runs shard `index` of `count` (1-based). */
  shard?: { index: number; count: number };
  /** Stations of the file left to other shards. */
  otherShards: number;
  /** NTRIP_TLS_CA_FILE, when set. */
  tlsCa?: StationTlsCa;
}

export interface NtripStationsSection {
  ntripStations?: NtripStationsConfig;
}

export const STATIONS_VARIABLE = "NTRIP_STATIONS";
export const STATIONS_FLAG = "ntrip-stations";
export const SHARD_VARIABLE = "NTRIP_SHARD";
export const TLS_CA_VARIABLE = "NTRIP_TLS_CA_FILE";
export const DEFAULT_GGA_INTERVAL_SEC = 10;

const KNOWN_FIELDS = new Set([
  "id",
  "enable",
  "initial_delay",
  "src_host",
  "src_port",
  "src_mount",
  "src_user",
  "src_pass",
  "src_ntrip_version",
  "src_tls",
  "src_proxy",
  "src_via",
  "dst_host",
  "dst_port",
  "dst_mount",
  "dst_user",
  "dst_pass",
  "dst_ntrip_version",
  "dst_tls",
  "dst_proxy",
  "dst_via",
  "wg_config",
  "lat",
  "lon",
  "alt",
  "gga_interval",
  "gga_talker",
  "format",
]);
/**
 * Fields whose values are never shown in a message: the secret-named ones (the one rule, src/util/secret.ts:
 * src_pass, dst_pass) and those whose content may hold a secret (a proxy's credentials, an inline wg config).
 */
const HOLDS_SECRETS = new Set(["wg_config", "src_proxy", "dst_proxy"]);
const hiddenField = (field: string) => isSecretField(field) || HOLDS_SECRETS.has(field);
const STATION_ID = /^[A-Za-z0-9_.:-]{1,64}$/;
/** Printable ASCII without space; a leading slash is taken off. */
const MOUNT = /^[!-~]{1,128}$/;
const PROXY_EXPECTED = "a SOCKS5 proxy: host:port, host:port:user:pass or socks5://[user:pass@]host:port";

/** The shard (1-based) a station id belongs to among `count`: xxh64(UTF-8 id, seed 0) mod count, plus one. */
export function stationShard(id: string, count: number): number {
  return Number(xxh64(new TextEncoder().encode(id)) % BigInt(count)) + 1;
}

/** Parses a proxy value; throws Error with what was expected (never with the value: it may hold a password). */
export function parseStationProxy(text: string): StationProxy {
  const t = text.trim();
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(t)) {
    if (!/^socks5h?:\/\//i.test(t)) throw new Error(`${PROXY_EXPECTED} (only SOCKS5 is supported)`);
    const c = parseSocks5Url(t);
    return { host: c.host, port: c.port, username: c.username, password: c.password };
  }
  const parts = t.split(":");
  if (parts.length !== 2 && parts.length < 4) throw new Error(PROXY_EXPECTED);
  const host = parseHost(parts[0]);
  const port = /^\d{1,5}$/.test(parts[1]) ? Number(parts[1]) : 0;
  if (host === undefined || port < 1 || port > 65535) throw new Error(PROXY_EXPECTED);
  if (parts.length === 2) return { host, port };
  // host:port:user:pass, the password may itself hold colons.
  const username = parts[2];
  const password = parts.slice(3).join(":");
  if (username === "") throw new Error(`${PROXY_EXPECTED} (empty user)`);
  return { host, port, username, password };
}

/** Where messages point for one field of one station. */
class StationReader {
  constructor(
    private readonly ctx: LoadContext,
    private readonly source: string,
    private readonly lines: JsonElementLines | undefined,
    private readonly raw: Record<string, unknown>,
    private readonly label: string,
    private readonly multiLine: boolean,
  ) {}

  line(field?: string): number | undefined {
    if (!this.multiLine) return undefined;
    return (field !== undefined ? this.lines?.keys.get(field) : undefined) ?? this.lines?.line;
  }

  at(field: string): Omit<ConfigErrorInit, "expected"> {
    return { source: this.source, line: this.line(field), key: `${this.label}: ${field}` };
  }

  error(field: string, expected: string, value?: unknown): void {
    const init: ConfigErrorInit = { ...this.at(field), expected };
    if (value !== undefined) {
      if (hiddenField(field)) init.gotDescription = describeHidden(value);
      else init.got = typeof value === "string" ? value : JSON.stringify(value);
    }
    this.ctx.errorAt(init);
  }

  has(field: string): boolean {
    return this.raw[field] !== undefined && this.raw[field] !== null;
  }

  /** A string field; CR and LF only where `lines` allows them (inline INI). */
  string(field: string, required: boolean, lines = false): string | undefined {
    const v = this.raw[field];
    if (v === undefined || v === null || v === "") {
      if (required) this.error(field, "a non-empty string (required)");
      return undefined;
    }
    if (typeof v !== "string") {
      this.error(field, "a string", v);
      return undefined;
    }
    if (lines ? v.includes("\0") : /[\r\n\0]/.test(v)) {
      this.error(field, "a single line (no CR, LF or NUL)");
      return undefined;
    }
    return v;
  }

  number(field: string, min: number, max: number, fallback: number, integer = false): number {
    const v = this.raw[field];
    if (v === undefined || v === null) return fallback;
    if (
      typeof v !== "number" || !Number.isFinite(v) || v < min || v > max || (integer && !Number.isInteger(v))
    ) {
      this.error(field, `${integer ? "an integer" : "a number"} ${min}..${max}`, v);
      return fallback;
    }
    return v;
  }

  boolean(field: string, fallback: boolean): boolean {
    const v = this.raw[field];
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "boolean") {
      this.error(field, "true or false", v);
      return fallback;
    }
    return v;
  }

  choice<T extends string | number>(field: string, choices: readonly T[], fallback: T): T {
    const v = this.raw[field];
    if (v === undefined || v === null || v === "") return fallback;
    const norm = String(v).trim().toLowerCase();
    const hit = choices.find((c) => String(c).toLowerCase() === norm);
    if (hit === undefined) {
      this.error(field, `one of ${choices.map((c) => JSON.stringify(c)).join(", ")}`, v);
      return fallback;
    }
    return hit;
  }
}

function describeHidden(value: unknown): string {
  return typeof value === "string"
    ? `a ${value.length}-character value (not shown: it may hold a secret)`
    : `a ${Array.isArray(value) ? "list" : typeof value} (not shown)`;
}

function readSide(r: StationReader, prefix: "src" | "dst"): StationSide | undefined {
  const host = r.string(`${prefix}_host`, true);
  const parsedHost = host !== undefined ? parseHost(host.trim()) : undefined;
  if (host !== undefined && parsedHost === undefined) {
    r.error(`${prefix}_host`, "a host name or IP address", host);
  }
  const port = r.number(`${prefix}_port`, 1, 65535, 0, true);
  if (!r.has(`${prefix}_port`)) r.error(`${prefix}_port`, "a port number 1..65535 (required)");
  let mount = r.string(`${prefix}_mount`, true)?.trim();
  if (mount !== undefined) {
    mount = mount.replace(/^\//, "");
    if (!MOUNT.test(mount)) {
      r.error(`${prefix}_mount`, "a mountpoint name (printable characters, no spaces)", mount);
      mount = undefined;
    }
  }
  const user = r.string(`${prefix}_user`, false);
  if (user !== undefined && user.includes(":")) {
    r.error(`${prefix}_user`, "a user name without ':' (Basic auth)");
  }
  const password = r.string(`${prefix}_pass`, prefix === "dst");
  const version = r.choice<NtripVersionChoice>(
    `${prefix}_ntrip_version`,
    prefix === "src" ? [1, 2, "auto"] : [1, 2],
    prefix === "src" ? "auto" : 1,
  );
  if (prefix === "dst" && version === 1 && password !== undefined && /\s/.test(password)) {
    r.error("dst_pass", "a password without spaces (the NTRIP 1 SOURCE line is split at spaces)");
  }
  const tls = r.boolean(`${prefix}_tls`, false);
  let proxy: StationProxy | undefined;
  const proxyText = r.string(`${prefix}_proxy`, false);
  if (proxyText !== undefined) {
    try {
      proxy = parseStationProxy(proxyText);
    } catch (e) {
      // parseSocks5Url's messages start with "expected" already; r.error says it once.
      r.error(`${prefix}_proxy`, (e as Error).message.replace(/^expected /, ""), proxyText);
    }
  }
  const via = r.choice<StationVia>(`${prefix}_via`, ["auto", "wg", "proxy", "direct"], "auto");
  if (via === "proxy" && proxyText === undefined) {
    r.error(`${prefix}_via`, `${prefix}_proxy to be set too`, via);
  }
  if (parsedHost === undefined || port === 0 || mount === undefined) return undefined;
  return { host: parsedHost, port, mount, user, password, version, tls, proxy, via };
}

async function readWgConfig(
  ctx: LoadContext,
  r: StationReader,
  value: string,
  baseDir: string | undefined,
): Promise<WgConfig | undefined> {
  const at = r.at("wg_config");
  const where = `${at.source}${at.line !== undefined ? `:${at.line}` : ""}: ${at.key}`;
  return await ctx.capture(async () => {
    const inline = value.includes("|") || /[\r\n]/.test(value) || /\[\s*interface\s*\]/i.test(value);
    if (inline) return parseWgText(value, where, ctx.warnings);
    const path = value.startsWith("/") || baseDir === undefined ? value.trim() : `${baseDir}/${value.trim()}`;
    const text = await readConfigFile(path, at);
    if (await isWorldAccessible(path)) ctx.warnings.push(worldAccessibleWarning(path));
    return parseWgText(text, path, ctx.warnings);
  });
}

async function readStation(
  ctx: LoadContext,
  r: StationReader,
  id: string,
  baseDir: string | undefined,
  origin: string,
): Promise<StationConfig | undefined> {
  const errorsBefore = ctx.problems.errors.length;
  const enable = r.boolean("enable", true);
  const initialDelaySec = r.number("initial_delay", 0, 86_400, 0);
  const source = readSide(r, "src");
  const destination = readSide(r, "dst");
  const wgText = r.string("wg_config", false, true);
  const wgConfig = wgText !== undefined ? await readWgConfig(ctx, r, wgText, baseDir) : undefined;
  for (const [prefix, side] of [["src", source], ["dst", destination]] as const) {
    if (side?.via === "wg" && wgText === undefined) r.error(`${prefix}_via`, "wg_config to be set too", "wg");
  }
  let position: StationPosition | undefined;
  if (r.has("lat") || r.has("lon")) {
    if (!r.has("lat") || !r.has("lon")) r.error(r.has("lat") ? "lon" : "lat", "lat and lon given together");
    const latDeg = r.number("lat", -90, 90, NaN);
    const lonDeg = r.number("lon", -180, 180, NaN);
    const altM = r.number("alt", -1000, 100_000, 0);
    if (Number.isFinite(latDeg) && Number.isFinite(lonDeg)) position = { latDeg, lonDeg, altM };
  }
  const ggaIntervalSec = r.number("gga_interval", 0, 86_400, DEFAULT_GGA_INTERVAL_SEC);
  const ggaTalker = r.choice<"GP" | "GN">("gga_talker", ["GP", "GN"], "GP");
  const format = r.choice<StationFormat>("format", ["rtcm3", "raw"], "rtcm3");
  if (ctx.problems.errors.length > errorsBefore || !source || !destination) return undefined;
  return {
    id,
    enable,
    initialDelaySec,
    source,
    destination,
    wgConfig,
    position,
    ggaIntervalSec,
    ggaTalker,
    format,
    origin,
  };
}

function warnAboutProxiesTheTunnelHides(ctx: LoadContext, r: StationReader, s: StationConfig): void {
  if (!s.wgConfig) return;
  for (const [prefix, side] of [["src", s.source], ["dst", s.destination]] as const) {
    if (side.proxy && side.via === "auto") {
      const at = r.at(`${prefix}_proxy`);
      ctx.problems.warn(
        at.source,
        at.line,
        `${at.key}: not used: wg_config carries both sides (set ${prefix}_via to "proxy" to use the proxy)`,
      );
    }
  }
}

/** The JSON text of NTRIP_STATIONS: inline when it starts with `[`, else the file it names. */
async function stationsText(s: Setting): Promise<{ text: string; source: string; baseDir?: string }> {
  const v = s.value.trim();
  if (v.startsWith("[")) return { text: s.value, source: s.key ?? s.source };
  const text = await readConfigFile(v, s);
  const slash = v.lastIndexOf("/");
  return { text, source: v, baseDir: slash >= 0 ? v.slice(0, slash) || "/" : "." };
}

function readShard(ctx: LoadContext): { index: number; count: number } | undefined {
  const s = ctx.envSetting(SHARD_VARIABLE);
  if (!s) return undefined;
  const m = /^\s*(\d{1,4})\s*\/\s*(\d{1,4})\s*$/.exec(s.value);
  const index = m ? Number(m[1]) : 0;
  const count = m ? Number(m[2]) : 0;
  if (!m || count < 1 || index < 1 || index > count) {
    ctx.error(s, "i/n with 1 <= i <= n <= 9999 (this machine runs shard i of n)", s.value);
    return undefined;
  }
  return { index, count };
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/**
 * NTRIP_TLS_CA_FILE: a PEM file of CA certificates the TLS sides trust besides the default roots (a private
 * caster's own CA). Every certificate must parse; a private key in the file is warned about and not used.
 */
async function readTlsCa(ctx: LoadContext): Promise<StationTlsCa | undefined> {
  const s = ctx.envSetting(TLS_CA_VARIABLE);
  if (!s) return undefined;
  const file = s.value.trim();
  const expected = "the path of a readable PEM file of CA certificates";
  let text: string;
  try {
    const info = await Deno.stat(file);
    if (!info.isFile) throw new Error("not a regular file");
    if (info.size > MAX_CONFIG_FILE_BYTES) throw new Error(`larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
    text = await Deno.readTextFile(file);
  } catch (e) {
    const why = e instanceof Deno.errors.NotFound
      ? "no such file"
      : e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable
      ? "permission denied"
      : (e as Error).message;
    ctx.error(s, `${expected} (${why})`, file);
    return undefined;
  }
  const certs = text.match(PEM_CERTIFICATE) ?? [];
  if (certs.length === 0) {
    ctx.error(s, `${expected} (the file holds no "-----BEGIN CERTIFICATE-----" block)`, file);
    return undefined;
  }
  for (const [i, pem] of certs.entries()) {
    try {
      new X509Certificate(pem);
    } catch (e) {
      ctx.error(s, `${expected} (certificate #${i + 1} does not parse: ${(e as Error).message})`, file);
      return undefined;
    }
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(text)) {
    ctx.warn(s, `${file} holds a private key, which is not used (a CA file needs only certificates)`);
  }
  const digest = xxh64(new TextEncoder().encode(certs.join("\n"))).toString(16);
  return new StationTlsCa(file, certs, digest);
}

export async function loadNtripStationsSection(ctx: LoadContext): Promise<NtripStationsSection> {
  const setting = ctx.setting(STATIONS_VARIABLE, STATIONS_FLAG);
  const shard = readShard(ctx);
  if (!setting) {
    if (shard) {
      ctx.warn(ctx.envSetting(SHARD_VARIABLE), `${SHARD_VARIABLE} is set but ${STATIONS_VARIABLE} is not`);
    }
    const ca = ctx.envSetting(TLS_CA_VARIABLE);
    if (ca) ctx.warn(ca, `${TLS_CA_VARIABLE} is set but ${STATIONS_VARIABLE} is not`);
    return {};
  }
  const tlsCa = await readTlsCa(ctx);
  let tlsSides = 0;
  const { text, source, baseDir } = await stationsText(setting);
  const multiLine = /\n/.test(text.trim());
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (e) {
    throw new ConfigError({
      source,
      line: multiLine ? syntaxErrorLine(text, e) : undefined,
      expected: `a JSON array of station objects (${
        (e as Error).message.replace(/\s+/g, " ").slice(0, 120)
      })`,
    });
  }
  if (!Array.isArray(parsed)) {
    throw new ConfigError({ source, expected: "a JSON array of station objects ([{...}, ...])" });
  }
  if (baseDir !== undefined && await isWorldAccessible(source)) {
    ctx.warnings.push(worldAccessibleWarning(source));
  }
  const lines = arrayElementLines(text);
  const stations: StationConfig[] = [];
  const seen = new Map<string, string>();
  let otherShards = 0;
  for (const [i, raw] of parsed.entries()) {
    const elementLines = lines[i];
    const elementLine = multiLine ? elementLines?.line : undefined;
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
      ctx.errorAt({ source, line: elementLine, key: `station #${i + 1}`, expected: "an object {...}" });
      continue;
    }
    const obj = raw as Record<string, unknown>;
    const idValue = obj.id;
    const label = typeof idValue === "string" && idValue !== "" ? `station ${idValue}` : `station #${i + 1}`;
    const r = new StationReader(ctx, source, elementLines, obj, label, multiLine);
    const id = r.string("id", true);
    if (id === undefined) continue;
    if (!STATION_ID.test(id)) {
      r.error("id", "a station id of letters, digits, _ . : - (at most 64)", id);
      continue;
    }
    const origin = `${source}${elementLine !== undefined ? `:${elementLine}` : ""}`;
    const first = seen.get(id);
    if (first !== undefined) {
      r.error("id", `a unique station id (${JSON.stringify(id)} is already defined at ${first})`);
      continue;
    }
    seen.set(id, origin);
    for (const key of Object.keys(obj)) {
      if (!KNOWN_FIELDS.has(key)) {
        ctx.problems.warn(source, r.line(key), `${label}: unknown field ${JSON.stringify(key)} ignored`);
      }
    }
    for (const rep of elementLines?.repeated ?? []) {
      ctx.problems.warn(
        source,
        multiLine ? rep.line : undefined,
        `${label}: ${rep.key} given twice; the last applies`,
      );
    }
    const station = await readStation(ctx, r, id, baseDir, origin);
    if (!station) continue;
    for (const side of [station.source, station.destination]) {
      if (!side.tls) continue;
      tlsSides++;
      if (tlsCa) side.tlsCa = tlsCa;
    }
    warnAboutProxiesTheTunnelHides(ctx, r, station);
    if (shard && stationShard(id, shard.count) !== shard.index) {
      otherShards++;
      continue;
    }
    stations.push(station);
  }
  const file = baseDir !== undefined ? source : undefined;
  if (tlsCa && tlsSides === 0 && ctx.problems.errors.length === 0) {
    ctx.warn(
      ctx.envSetting(TLS_CA_VARIABLE),
      `${TLS_CA_VARIABLE} is set but no station has src_tls or dst_tls`,
    );
  }
  return { ntripStations: { stations, source, file, shard, otherShards, tlsCa } };
}
