/**
 * The relay section of the config: seed 002's `RELAY_N="in_port;out_port;out_host;TCP|UDP"` plus its global
 * variables, and wgedge's optional `key=value` fields; either port may be a range `FIRST-LAST` (both of equal
 * length, see port_range.ts). A pure function over an env map so the loader, the
 * `relay`/`serve` commands and `check-config` share it; every problem names the variable and what was
 * expected, and all problems are reported together (ConfigErrors).
 */
import { ConfigError, type ConfigErrorInit, ConfigErrors, ProblemCollector } from "./errors.ts";
import type { LoadContext, Setting } from "./context.ts";
import { formatPortSpan, parsePortSpan } from "./port_range.ts";

export type RelayProtocol = "tcp" | "udp";

export interface RelaySpec {
  /** Where it came from: `RELAY_3`, or `--relay #2` for command-line relays. Stable key for reloads. */
  id: string;
  inPort: number;
  outPort: number;
  /**
   * A port range: `in_port-in_last` maps port by port onto `out_port-out_last` (one listener per port, one
   * relay in status). Absent = 1 (a single port).
   */
  portCount?: number;
  /** Host name or literal IP (IPv6 without brackets); resolved on every dial. */
  outHost: string;
  protocol: RelayProtocol;
  /** Listen address (default all IPv4: 0.0.0.0). */
  bind?: string;
  /** Egress: `wg:NAME` or `socks5://[user:pass@]host:port`; absent = host network. May hold a secret. */
  via?: string;
  /** UDP flow idle timeout in seconds (default 60). */
  udpTimeoutSec: number;
  /** UDP flow table bound for this relay. */
  maxFlows: number;
  /** TCP: PROXY protocol header sent to the target. */
  proxyProtocol?: "v1" | "v2";
}

export interface RelayOptions {
  connectTimeoutMs: number;
  keepAliveIdleSec: number;
  keepAliveIntervalSec: number;
  keepAliveCount: number;
  logging: boolean;
  healthCheck: boolean;
  healthCheckTimeoutMs: number;
  healthCheckRetries: number;
  healthCheckIntervalMs: number;
}

export interface RelayConfig {
  relays: RelaySpec[];
  options: RelayOptions;
}

export type Env = Record<string, string | undefined>;

export const RELAY_DEFAULTS: RelayOptions = {
  connectTimeoutMs: 15_000,
  keepAliveIdleSec: 30,
  keepAliveIntervalSec: 10,
  keepAliveCount: 3,
  logging: true,
  healthCheck: false,
  healthCheckTimeoutMs: 10_000,
  healthCheckRetries: 3,
  healthCheckIntervalMs: 30_000,
};
export const DEFAULT_UDP_TIMEOUT_SEC = 60;
/** Each flow holds a socket with a pending 64 KiB receive buffer: 1024 flows ~ 64 MiB at most. */
export const DEFAULT_UDP_MAX_FLOWS = 1024;

const RELAY_VAR = /^RELAY_(\d+)$/;
const HOSTNAME =
  /^(?=.{1,253}$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62})(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,62}))*\.?$/;
const IPV4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;

function isIpv4(s: string): boolean {
  const m = IPV4.exec(s);
  return !!m && m.slice(1).every((o) => Number(o) <= 255);
}

function isIpv6(s: string): boolean {
  if (!s.includes(":") || !/^[0-9a-fA-F:.]+$/.test(s)) return false;
  try {
    new URL(`http://[${s}]/`);
    return true;
  } catch {
    return false;
  }
}

/** A host: literal IPv4/IPv6 (brackets allowed) or a DNS name. Returns the unbracketed form or undefined. */
export function parseHost(s: string): string | undefined {
  const h = s.startsWith("[") && s.endsWith("]") ? s.slice(1, -1) : s;
  if (isIpv4(h) || isIpv6(h)) return h;
  if (h !== s) return undefined;
  if (/^\d+(\.\d+)*$/.test(h)) return undefined; // "300.1.1.1" is a bad IP, not a name
  return HOSTNAME.test(h) ? h : undefined;
}

function parseIntStrict(s: string): number | undefined {
  const t = s.trim();
  return /^\d{1,10}$/.test(t) ? Number(t) : undefined;
}

/** Where a value came from, for messages: the variable (or flag), or an env file with line and variable. */
export interface RelayValueLocation {
  source: string;
  line?: number;
  key?: string;
}

/**
 * Parses one RELAY_N value. `id` names the relay (`RELAY_3`); `where` says where the value came from (the
 * variable itself, or the env file and line) for messages.
 */
export function parseRelayLine(
  value: string,
  id: string,
  where: RelayValueLocation = { source: id },
): RelaySpec {
  const p = new ProblemCollector();
  const loc = { source: where.source, line: where.line };
  const keyed = (field: string) => (where.key ? `${where.key} ${field}` : field);
  const fields = value.trim().split(";").map((f) => f.trim());
  const shape = "in_port[-last];out_port[-last];out_host;TCP|UDP[;key=value...]";
  if (fields.length < 4) {
    throw new ConfigError({
      ...loc,
      key: where.key,
      expected: `"${shape}" (4 fields separated by ';')`,
      got: redactVia(value),
    });
  }
  const span = (s: string, what: string): { first: number; count: number } => {
    const r = parsePortSpan(s);
    if ("problem" in r) {
      p.error({ ...loc, key: keyed(what), expected: r.problem, got: s });
      return { first: 0, count: 0 };
    }
    return r;
  };
  const inSpan = span(fields[0], "in_port");
  const outSpan = span(fields[1], "out_port");
  if (inSpan.count > 0 && outSpan.count > 0 && inSpan.count !== outSpan.count) {
    p.error({
      ...loc,
      key: keyed("out_port"),
      expected: `a range as long as in_port ${formatPortSpan(inSpan)} (${inSpan.count} ports)`,
      got: fields[1],
    });
  }
  const inPort = inSpan.first;
  const outPort = outSpan.first;
  const outHost = parseHost(fields[2]);
  if (outHost === undefined) {
    p.error({ ...loc, key: keyed("out_host"), expected: "a host name or IP address", got: fields[2] });
  }
  const proto = fields[3].toLowerCase();
  if (proto !== "tcp" && proto !== "udp") {
    p.error({ ...loc, key: keyed("protocol"), expected: "TCP or UDP", got: fields[3] });
  }

  const spec: RelaySpec = {
    id,
    inPort,
    outPort,
    outHost: outHost ?? "",
    protocol: proto === "udp" ? "udp" : "tcp",
    udpTimeoutSec: DEFAULT_UDP_TIMEOUT_SEC,
    maxFlows: DEFAULT_UDP_MAX_FLOWS,
  };
  if (inSpan.count > 1) spec.portCount = inSpan.count;
  const seen = new Set<string>();
  for (const extra of fields.slice(4)) {
    if (extra === "") continue;
    const eq = extra.indexOf("=");
    const key = eq < 0 ? extra.toLowerCase() : extra.slice(0, eq).trim().toLowerCase();
    const val = eq < 0 ? "" : extra.slice(eq + 1).trim();
    const known =
      "bind=ADDR, via=wg:NAME|socks5://..., udp_timeout=SECONDS, max_flows=N, proxy_protocol=v1|v2";
    if (eq < 0) {
      p.error({ ...loc, key: keyed(extra), expected: `key=value (one of ${known})` });
      continue;
    }
    if (seen.has(key)) {
      p.error({ ...loc, key: keyed(key), expected: "each option at most once" });
      continue;
    }
    seen.add(key);
    switch (key) {
      case "bind": {
        const h = parseHost(val);
        if (h === undefined || !(isIpv4(h) || isIpv6(h))) {
          p.error({ ...loc, key: keyed("bind"), expected: "an IPv4 or IPv6 address to listen on", got: val });
        } else spec.bind = h;
        break;
      }
      case "via": {
        if (/^wg:[A-Za-z0-9_-]{1,64}$/.test(val)) spec.via = val;
        else if (/^socks5h?:\/\//i.test(val)) {
          if (
            !/^socks5h?:\/\/(?:[^:@/]*(?::[^@/]*)?@)?(\[[0-9a-fA-F:.]+\]|[^:/@\[\]]+):(\d{1,5})\/?$/i.test(
              val,
            )
          ) {
            p.error({ ...loc, key: keyed("via"), expected: "socks5://[user:pass@]host:port" });
          } else {
            const portNum = Number(/:(\d{1,5})\/?$/.exec(val)![1]);
            if (portNum < 1 || portNum > 65535) {
              p.error({ ...loc, key: keyed("via"), expected: "a proxy port 1..65535", got: String(portNum) });
            } else spec.via = val;
          }
        } else {
          p.error({
            ...loc,
            key: keyed("via"),
            expected: "wg:NAME or socks5://[user:pass@]host:port",
            got: redactVia(val),
          });
        }
        break;
      }
      case "udp_timeout": {
        const n = parseIntStrict(val);
        if (n === undefined || n < 1 || n > 86400) {
          p.error({ ...loc, key: keyed("udp_timeout"), expected: "seconds 1..86400", got: val });
        } else spec.udpTimeoutSec = n;
        break;
      }
      case "max_flows": {
        const n = parseIntStrict(val);
        if (n === undefined || n < 1 || n > 1_000_000) {
          p.error({ ...loc, key: keyed("max_flows"), expected: "an integer 1..1000000", got: val });
        } else spec.maxFlows = n;
        break;
      }
      case "proxy_protocol": {
        const v = val.toLowerCase();
        if (v !== "v1" && v !== "v2") {
          p.error({ ...loc, key: keyed("proxy_protocol"), expected: "v1 or v2", got: val });
        } else spec.proxyProtocol = v;
        break;
      }
      default:
        p.error({ ...loc, key: keyed(key), expected: `a known option (${known})` });
    }
  }
  if (spec.protocol === "udp" && spec.proxyProtocol) {
    p.error({ ...loc, key: keyed("proxy_protocol"), expected: "proxy_protocol only on TCP relays" });
  }
  if (spec.protocol === "udp" && spec.via?.toLowerCase().startsWith("socks5")) {
    p.error({
      ...loc,
      key: keyed("via"),
      expected: "wg:NAME for UDP relays (SOCKS5 UDP ASSOCIATE is not supported)",
    });
  }
  p.throwIfAny();
  return spec;
}

/** Hides the credentials of a socks5:// URL so an error message never echoes a password. */
export function redactVia(s: string): string {
  return s.replace(/(socks5h?:\/\/)[^@/;]*@/gi, "$1[redacted]@");
}

/** One value with where it came from. */
export interface RelayValue extends RelayValueLocation {
  name: string;
  value: string;
}

/** What the relay parser reads: plain env maps (tests) and the loader's LoadContext both provide it. */
export interface RelayValues {
  get(name: string): RelayValue | undefined;
  /** Every set RELAY_N. */
  relayVars(): RelayValue[];
  /** Relays given on the command line (`-r`). */
  flagRelays(): string[];
}

export function envValues(env: Env, flagRelays: string[] = []): RelayValues {
  return {
    get(name) {
      const v = env[name];
      return v === undefined || v.trim() === "" ? undefined : { name, value: v, source: name };
    },
    relayVars() {
      return Object.entries(env)
        .filter(([k, v]) => RELAY_VAR.test(k) && v !== undefined && v.trim() !== "")
        .map(([k, v]) => ({ name: k, value: v!, source: k }));
    },
    flagRelays: () => flagRelays,
  };
}

/** Adapts the config loader's context (flag > env > env file, with env-file lines in messages). */
export function contextValues(ctx: LoadContext): RelayValues {
  const wrap = (s: Setting | undefined): RelayValue | undefined =>
    s && { name: s.name, value: s.value, source: s.source, line: s.line, key: s.key };
  return {
    get: (name) => wrap(ctx.setting(name, FLAG_FOR[name])),
    relayVars: () => ctx.envWithPrefix("RELAY_").filter((s) => RELAY_VAR.test(s.name)).map((s) => wrap(s)!),
    flagRelays: () => ctx.flagValues("relay"),
  };
}

/** Command-line flags for the seed-002 globals (`wgedge relay --connect-timeout 5`). */
export const FLAG_FOR: Record<string, string> = {
  CONNECT_TIMEOUT: "connect-timeout",
  ENABLE_LOGGING: "logging",
  ENABLE_HEALTH_CHECK: "health-check",
};

function problemAt(v: RelayValue, expected: string): ConfigErrorInit {
  return { source: v.source, line: v.line, key: v.key, expected, got: v.value };
}

function parseBool(src: RelayValues, name: string, fallback: boolean, p: ProblemCollector): boolean {
  const v = src.get(name);
  if (v === undefined) return fallback;
  const t = v.value.trim().toLowerCase();
  if (["y", "yes", "true", "1", "on"].includes(t)) return true;
  if (["n", "no", "false", "0", "off"].includes(t)) return false;
  p.error(problemAt(v, "y or n (yes/no, true/false, 1/0)"));
  return fallback;
}

function parseNum(
  src: RelayValues,
  name: string,
  fallback: number,
  min: number,
  max: number,
  p: ProblemCollector,
): number {
  const v = src.get(name);
  if (v === undefined) return fallback;
  const n = parseIntStrict(v.value);
  if (n === undefined || n < min || n > max) {
    p.error(problemAt(v, `an integer ${min}..${max}`));
    return fallback;
  }
  return n;
}

export function parseRelayOptions(src: RelayValues, p: ProblemCollector): RelayOptions {
  const d = RELAY_DEFAULTS;
  const sec = (name: string, fallbackMs: number, max: number) =>
    parseNum(src, name, fallbackMs / 1000, 1, max, p) * 1000;
  return {
    connectTimeoutMs: sec("CONNECT_TIMEOUT", d.connectTimeoutMs, 3600),
    keepAliveIdleSec: parseNum(src, "KEEPALIVE_IDLE", d.keepAliveIdleSec, 1, 86400, p),
    keepAliveIntervalSec: parseNum(src, "KEEPALIVE_INTVL", d.keepAliveIntervalSec, 1, 3600, p),
    keepAliveCount: parseNum(src, "KEEPALIVE_CNT", d.keepAliveCount, 1, 127, p),
    logging: parseBool(src, "ENABLE_LOGGING", d.logging, p),
    healthCheck: parseBool(src, "ENABLE_HEALTH_CHECK", d.healthCheck, p),
    healthCheckTimeoutMs: sec("HEALTH_CHECK_TIMEOUT", d.healthCheckTimeoutMs, 3600),
    healthCheckRetries: parseNum(src, "HEALTH_CHECK_RETRIES", d.healthCheckRetries, 1, 100, p),
    healthCheckIntervalMs: sec("HEALTH_CHECK_INTERVAL", d.healthCheckIntervalMs, 86400),
  };
}

/**
 * Parses every `RELAY_N` (numbering may have gaps) plus relays given as flags (`-r`), and the seed-002
 * globals. Relays are ordered by N, flag relays last. Problems go to `p` (all of them, not just the first).
 */
export function parseRelays(src: RelayValues, p: ProblemCollector): RelayConfig {
  const entries: { n: number; id: string; v: RelayValue }[] = [];
  for (const v of src.relayVars()) entries.push({ n: Number(RELAY_VAR.exec(v.name)![1]), id: v.name, v });
  entries.sort((a, b) => a.n - b.n);
  src.flagRelays().forEach((value, i) => {
    const id = `--relay #${i + 1}`;
    entries.push({ n: Number.MAX_SAFE_INTEGER, id, v: { name: id, value, source: id } });
  });

  const relays: RelaySpec[] = [];
  const byPort = new Map<string, string>();
  for (const { id, v } of entries) {
    const spec = p.capture(() => parseRelayLine(v.value, id, v));
    if (!spec) continue;
    const clash = relayPorts(spec).map((port) => ({ port, prev: byPort.get(`${spec.protocol}/${port}`) }))
      .find((c) => c.prev !== undefined);
    if (clash) {
      p.error({
        source: v.source,
        line: v.line,
        key: v.key ? `${v.key} in_port` : "in_port",
        expected: `an in_port not already used by ${clash.prev} for ${spec.protocol.toUpperCase()}`,
        got: spec.portCount ? `${relayPortsText(spec)} (${clash.port} is taken)` : String(spec.inPort),
      });
      continue;
    }
    for (const port of relayPorts(spec)) byPort.set(`${spec.protocol}/${port}`, id);
    relays.push(spec);
  }
  const options = parseRelayOptions(src, p);
  return { relays, options };
}

/** Every port a relay listens on: in_port, or each port of its range. */
export function relayPorts(spec: RelaySpec): number[] {
  return Array.from({ length: spec.portCount ?? 1 }, (_, i) => spec.inPort + i);
}

/** `50000` or `50000-50099`: the listen port(s) as written. */
export function relayPortsText(spec: RelaySpec): string {
  return formatPortSpan({ first: spec.inPort, count: spec.portCount ?? 1 });
}

/** The target port(s): `60000` or `60000-60099`. */
export function relayTargetPortsText(spec: RelaySpec): string {
  return formatPortSpan({ first: spec.outPort, count: spec.portCount ?? 1 });
}

/** The pure form over an env map: throws ConfigErrors listing every problem. */
export function parseRelayConfig(env: Env, flagRelays: string[] = []): RelayConfig {
  const p = new ProblemCollector();
  const cfg = parseRelays(envValues(env, flagRelays), p);
  p.throwIfAny();
  return cfg;
}

export interface RelaySection {
  /** Present when at least one relay is configured (`serve` starts the relay service only then). */
  relay?: RelayConfig;
}

/** The config-loader section (see src/config/mod.ts): reads RELAY_N, `-r` flags and the seed-002 globals. */
export function loadRelaySection(ctx: LoadContext): RelaySection {
  const src = contextValues(ctx);
  const cfg = parseRelays(src, ctx.problems);
  // RELAY_X or relay_2 would otherwise be ignored without a word: say what the name should look like.
  for (const s of ctx.strayWithPrefix("RELAY_", RELAY_VAR)) {
    ctx.warn(s, "not a relay variable (expected RELAY_<number>, e.g. RELAY_1; typo?); ignored");
  }
  return cfg.relays.length > 0 ? { relay: cfg } : {};
}

/** True when env (or flags) configure at least one relay. */
export function hasRelayConfig(env: Env, flagRelays: string[] = []): boolean {
  return flagRelays.length > 0 || Object.entries(env).some(([k, v]) => RELAY_VAR.test(k) && !!v?.trim());
}

export { ConfigErrors };
