/** Flags shared by commands that bring one tunnel up (`up`, `ping`): the config and its single overrides. */
import type { Config } from "../config/mod.ts";
import type { WgConfig } from "../wireguard/config.ts";
import { type FlagTable, UsageError } from "./command.ts";
import { configureLogging, logger } from "../util/log.ts";
import { ENV_FILE_FLAG, TUNNEL_OVERRIDE_FLAGS, WG_CONFIG_FLAG } from "./config_flags.ts";

export const TUNNEL_FLAGS = {
  config: WG_CONFIG_FLAG,
  "env-file": ENV_FILE_FLAG,
  ...TUNNEL_OVERRIDE_FLAGS,
} as const satisfies FlagTable;

export const TUNNEL_USAGE = "-c wg.conf | WG_CONFIG=...  [--env-file FILE] [tunnel flags]";

/** For help: how the tunnel flags combine. */
export const TUNNEL_NOTE =
  "The tunnel comes from -c or WG_CONFIG; --address, --listen-port, --mtu and --endpoint (or their WG_* " +
  "variables, and WG_PRIVATE_KEY: a key or a key file) override single settings of it.";

/** Loads the one tunnel from flags/env; configuration problems become a clear error, never a stack trace. */
export async function loadTunnelFromFlags(values: Record<string, unknown>): Promise<WgConfig> {
  return (await loadTunnelConfig(values)).tunnel;
}

/** The tunnel and the whole loaded config (for the settings beside it, like the UAPI directory). */
export async function loadTunnelConfig(
  values: Record<string, unknown>,
): Promise<{ tunnel: WgConfig; config: Config }> {
  const flags: Record<string, string | undefined> = {};
  // socks5, http-proxy and proxy-user: `up`'s proxies (src/config/proxy.ts).
  const names = [
    "config",
    "address",
    "listen-port",
    "mtu",
    "endpoint",
    "uapi-dir",
    "socks5",
    "http-proxy",
    "proxy-user",
  ];
  for (const k of names) {
    flags[k] = values[k] as string | undefined;
  }
  // The loaders are imported here, when a command runs, not with the command table (for --help).
  const { isConfigError, loadConfigFromProcess } = await import("../config/mod.ts");
  let loaded;
  try {
    loaded = await loadConfigFromProcess(flags, values["env-file"] as string | undefined);
  } catch (e) {
    if (isConfigError(e)) throw new Error(`configuration is not valid:\n${(e as Error).message}`);
    throw e;
  }
  configureLogging({ level: loaded.config.log.level, json: loaded.config.log.format === "json" });
  const log = logger("config");
  for (const w of loaded.warnings) log.warn(w);
  if (!loaded.config.tunnel) throw new UsageError("no tunnel configured: pass -c wg.conf or set WG_CONFIG");
  return { tunnel: loaded.config.tunnel, config: loaded.config };
}
