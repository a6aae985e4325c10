/** Flags shared by commands that bring one tunnel up (`up`, `ping`): the config and its single overrides. */
import { isConfigError, loadConfigFromProcess } from "../config/mod.ts";
import type { WgConfig } from "../wireguard/config.ts";
import { type Options, UsageError } from "./command.ts";
import { configureLogging, logger } from "../util/log.ts";

export const TUNNEL_OPTIONS = {
  config: { type: "string", short: "c" },
  "env-file": { type: "string" },
  address: { type: "string" },
  "listen-port": { type: "string" },
  mtu: { type: "string" },
  endpoint: { type: "string" },
} satisfies Options;

export const TUNNEL_USAGE =
  "-c wg.conf | WG_CONFIG=...  [--env-file FILE] [--address A] [--listen-port N] [--mtu N] [--endpoint HOST:PORT]";

/** Loads the one tunnel from flags/env; configuration problems become a clear error, never a stack trace. */
export async function loadTunnelFromFlags(values: Record<string, unknown>): Promise<WgConfig> {
  const flags: Record<string, string | undefined> = {};
  for (const k of ["config", "address", "listen-port", "mtu", "endpoint"]) {
    flags[k] = values[k] as string | undefined;
  }
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
  return loaded.config.tunnel;
}
