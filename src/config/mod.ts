/**
 * THE config loader: flags + environment + env file + config files -> one typed, validated Config.
 *
 * Precedence, for every setting: command-line flag > environment variable > env file > config file > default.
 * (An env-file value is an environment variable that the real environment may still override; a config file
 * such as WG_CONFIG's wg-quick file sits below both, its single settings overridable by WG_MTU and friends.)
 *
 * The config is a set of independent sections. Each section loader reads its settings through the
 * LoadContext (which resolves precedence and remembers which variables were used), reports every bad value
 * with ctx.error(...) or by throwing ConfigError/ConfigErrors, and returns its part of the Config. The loader
 * runs all sections, so one start-up lists every problem at once, then throws ConfigErrors if there were any.
 *
 * How to add a section (e.g. relays from RELAY_N):
 *   1. In your own file (src/config/relay.ts) export the part's type and a loader:
 *        export interface RelaySection { relays: RelayConfig[] }
 *        export function loadRelaySection(ctx: LoadContext): RelaySection | Promise<RelaySection> { ... }
 *      Read values with ctx.setting("NAME", "flag-name") / ctx.envSetting / ctx.envWithPrefix("RELAY_"), and
 *      reuse ctx.int, ctx.oneOf, ctx.wgConfig, and the helpers in ip.ts (parseHostPort, parsePrefix).
 *      Name secret fields like secrets (password, token, privateKey...) so redact.ts hides them.
 *   2. Here: add the field to `Config` (`relays: RelayConfig[]`) and the loader to SECTIONS below.
 * That is all: check-config prints the new section (redacted) without further changes.
 */
import type { WgConfig } from "../wireguard/config.ts";
import { ConfigError, ConfigErrors } from "./errors.ts";
import { type EnvFileEntry, parseEnvFile } from "./envfile.ts";
import { type Flags, LoadContext } from "./context.ts";
import { isWorldAccessible, looksLikeContent, readConfigFile, worldAccessibleWarning } from "./source.ts";
import { isSecretField } from "./redact.ts";
import { loadTunnelSection, loadTunnelsSection } from "./tunnel.ts";
import { type AdminConfig, loadAdminSection } from "./admin.ts";
import { loadLogSection, type LogConfig } from "./logging.ts";
import { loadRelaySection, type RelayConfig } from "./relay.ts";
import { applyRpsPortDefaults, loadRpSection, type RpcConfig, type RpsConfig } from "./rp.ts";
import { loadMwgpConfigSection, type MwgpSection } from "./mwgp.ts";
import { loadNtripStationsSection, type NtripStationsConfig } from "./ntrip_stations.ts";
import { loadNtripCasterSection, type NtripCasterConfig } from "./ntrip_caster.ts";
import { privilegedPortWarnings } from "./privileged_ports.ts";
import { loadUapiSection, type UapiConfig } from "./uapi.ts";
import { loadProxySection, type ProxySpec } from "./proxy.ts";

export { ConfigError, ConfigErrors } from "./errors.ts";
export { type Flags, LoadContext, type Setting } from "./context.ts";
export type { AdminConfig } from "./admin.ts";
export type { LogConfig } from "./logging.ts";

export interface Config {
  /** The main tunnel (-c/--config or WG_CONFIG, with WG_* overrides); absent when not configured. */
  tunnel?: WgConfig;
  /** Named tunnels from WG_TUNNEL_<NAME>, keyed by the lowercased name. */
  tunnels: Map<string, WgConfig>;
  admin: AdminConfig;
  log: LogConfig;
  /** Port relays from RELAY_N / `-r` (absent when none is configured). */
  relay?: RelayConfig;
  /** Reverse-proxy server from RPS_CONFIG (+ RPS_*), absent when not configured. */
  rps?: RpsConfig;
  /** Reverse-proxy client from RPC_CONFIG + RPC_ROUTES (+ RPC_*), absent when not configured. */
  rpc?: RpcConfig;
  /** mwgp server/client from MWGP_SERVER_CONFIG / MWGP_CLIENT_CONFIG (absent when neither is set). */
  mwgp?: MwgpSection;
  /** NTRIP relay stations from NTRIP_STATIONS / --ntrip-stations (absent when not configured). */
  ntripStations?: NtripStationsConfig;
  /** The NTRIP caster from NTRIP_CASTER_MOUNTS (+ NTRIP_CASTER_LISTEN), absent when not configured. */
  ntripCaster?: NtripCasterConfig;
  /** Where tunnels serve their WireGuard UAPI socket (WG_UAPI_DIR / --uapi-dir). */
  uapi: UapiConfig;
  /** SOCKS5/HTTP proxies into tunnels from PROXY_<N> and --socks5/--http-proxy (absent when none). */
  proxies?: ProxySpec[];
}

export interface Section {
  /** For messages and docs. */
  name: string;
  load(ctx: LoadContext): Partial<Config> | Promise<Partial<Config>>;
}

/** Every section, in load order. Add new ones at the end. */
export const SECTIONS: Section[] = [
  { name: "tunnel", load: loadTunnelSection },
  { name: "tunnels", load: loadTunnelsSection },
  { name: "admin", load: loadAdminSection },
  { name: "log", load: loadLogSection },
  { name: "relay", load: loadRelaySection },
  { name: "rp", load: loadRpSection },
  { name: "mwgp", load: loadMwgpConfigSection },
  { name: "ntrip_stations", load: loadNtripStationsSection },
  { name: "ntrip_caster", load: loadNtripCasterSection },
  { name: "uapi", load: loadUapiSection },
  { name: "proxy", load: loadProxySection },
];

export interface LoadOptions {
  /** The process environment (Deno.env.toObject()); tests pass their own. */
  env: Record<string, string | undefined>;
  /** Parsed command-line flags by long name (`config`, `mtu`, ...). */
  flags: Flags;
  /** Env file path (--env-file); when absent, WGEDGE_ENV_FILE from `env` is used. */
  envFile?: string;
}

export interface LoadedConfig {
  config: Config;
  /** `source:line: message` lines: ignored keys, repeated settings, weak tokens... */
  warnings: string[];
}

async function readEnvFile(
  path: string,
  sourceName: string,
  warnings: string[],
): Promise<Map<string, EnvFileEntry>> {
  const text = await readConfigFile(path, sourceName);
  const entries = parseEnvFile(text, path, warnings);
  const holdsSecrets = [...entries].some(([name, e]) =>
    isSecretField(name) || /_KEY$/.test(name) || looksLikeContent(e.value)
  );
  if (holdsSecrets && await isWorldAccessible(path)) warnings.push(worldAccessibleWarning(path));
  return entries;
}

/**
 * Loads and validates the whole configuration. Throws ConfigErrors (every problem, each naming its file or
 * variable, line and expectation); never includes a secret in an error or warning.
 */
export async function loadConfig(opts: LoadOptions): Promise<LoadedConfig> {
  const warnings: string[] = [];
  try {
    return await loadWithWarnings(opts, warnings);
  } catch (e) {
    if (e instanceof ConfigErrors) e.warnings.push(...warnings);
    throw e;
  }
}

async function loadWithWarnings(opts: LoadOptions, warnings: string[]): Promise<LoadedConfig> {
  const fromFlag = opts.envFile !== undefined && opts.envFile.trim() !== "";
  const envFilePath = fromFlag ? opts.envFile!.trim() : opts.env.WGEDGE_ENV_FILE?.trim() || undefined;
  let envFile = new Map<string, EnvFileEntry>();
  if (envFilePath !== undefined) {
    // A broken env file stops here: the sections would only report the consequences of its errors.
    envFile = await readEnvFile(envFilePath, fromFlag ? "--env-file" : "WGEDGE_ENV_FILE", warnings);
  }
  const ctx = new LoadContext(opts.env, envFile, envFilePath, opts.flags, warnings);
  ctx.envSetting("WGEDGE_ENV_FILE"); // consumed above
  const config: Partial<Config> = {};
  for (const section of SECTIONS) {
    const part = await ctx.capture(() => section.load(ctx));
    if (part) Object.assign(config, part);
  }
  checkTunnelReferences(config, ctx);
  warnings.push(...privilegedPortWarnings(config));
  applyRpsPortDefaults(config); // needs every section: the default RPS_ALLOW_PORTS leaves wgedge's own ports out
  ctx.warnUnusedEnvFileEntries();
  ctx.problems.throwIfAny();
  return { config: config as Config, warnings };
}

/**
 * Across sections: every `via=wg:NAME` must name a configured tunnel (WG_TUNNEL_<NAME>; `wg:main` is also
 * the WG_CONFIG tunnel), so check-config catches what serve would otherwise only find when starting.
 */
function checkTunnelReferences(config: Partial<Config>, ctx: LoadContext): void {
  const users = [...config.relay?.relays ?? [], ...config.proxies ?? []];
  for (const r of users) {
    const m = /^wg:(.+)$/i.exec(r.via ?? "");
    if (!m) continue;
    const name = m[1].toLowerCase();
    if (config.tunnels?.has(name) || (name === "main" && config.tunnel)) continue;
    // The relay's own variable (flag relays have none): an env-file relay is named by file and line.
    const s = /^RELAY_\d+$/.test(r.id) ? ctx.envSetting(r.id) : undefined;
    ctx.problems.error({
      source: s?.source ?? r.id,
      line: s?.line,
      key: s?.key ? `${s.key} via` : "via",
      expected: `a configured tunnel: set WG_TUNNEL_${m[1].toUpperCase()}` +
        (name === "main" ? " or WG_CONFIG" : " (or use wg:main for the WG_CONFIG tunnel)"),
      got: `wg:${m[1]}`,
    });
  }
}

/** Loads from the real process: Deno.env plus the given flags. */
export function loadConfigFromProcess(flags: Flags, envFile?: string): Promise<LoadedConfig> {
  return loadConfig({ env: Deno.env.toObject(), flags, envFile });
}

/** True for the errors loadConfig throws (ConfigError or ConfigErrors). */
export function isConfigError(e: unknown): e is ConfigError | ConfigErrors {
  return e instanceof ConfigError || e instanceof ConfigErrors;
}
