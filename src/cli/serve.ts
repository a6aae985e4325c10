/**
 * `wgedge serve`: the one entry point a VPS needs. Parses flags, hands the configuration loader and every
 * service starter to the supervisor (src/services/supervisor.ts), reloads on SIGHUP and stops cleanly on
 * SIGINT/SIGTERM. The relay, rps and rpc commands are this with one service.
 */
import { type Command, defineCommand, UsageError, waitForShutdownSignal } from "./command.ts";
import {
  ADMIN_LISTEN_FLAG,
  ENV_FILE_FLAG,
  RELAY_FLAG,
  RELAY_OPTION_FLAGS,
  WG_CONFIG_FLAG,
} from "./config_flags.ts";
import { ConfigErrors, isConfigError, loadConfig } from "../config/mod.ts";
import { Supervisor } from "../services/supervisor.ts";
import { SERVICE_STARTERS } from "../services/starters.ts";
import { VERSION } from "./version.ts";
import { logger } from "../util/log.ts";

const log = logger("serve");

export interface ServeOptions {
  /** Flags by long name, as the config loader takes them. */
  flags: Record<string, string | boolean | string[] | undefined>;
  envFile?: string;
  /** Only these services (the `relay` command passes ["relay"]). */
  only?: string[];
  /** Serve the admin API (default true). */
  admin?: boolean;
  env?: Record<string, string | undefined>;
}

function printConfigErrors(e: unknown): void {
  const errs = e instanceof ConfigErrors ? e.errors : [e as Error];
  for (const w of e instanceof ConfigErrors ? e.warnings : []) console.error(`warning: ${w}`);
  for (const x of errs) console.error(x.message);
}

/** The supervisor for these options: the config is read from flags, the environment and the env file. */
export function createSupervisor(opts: ServeOptions): Supervisor {
  return new Supervisor({
    load: () =>
      loadConfig({ env: opts.env ?? Deno.env.toObject(), flags: opts.flags, envFile: opts.envFile }),
    starters: SERVICE_STARTERS,
    only: opts.only,
    admin: opts.admin,
    version: VERSION,
  });
}

/** Runs until SIGINT/SIGTERM; SIGHUP reloads. Returns the exit code. */
export async function runServer(opts: ServeOptions, requireService?: string): Promise<number> {
  const server = createSupervisor(opts);
  try {
    await server.start();
  } catch (e) {
    if (isConfigError(e)) {
      printConfigErrors(e);
      return 1;
    }
    throw e;
  }
  if (requireService && !server.serviceNames.includes(requireService)) {
    await server.stop();
    throw new UsageError(`nothing to do: no ${requireService} configured`);
  }
  if (server.serviceNames.length === 0) {
    log.warn("no service configured (set RELAY_N, WG_CONFIG, ...); serving the admin API only");
  }
  const onHup = () => {
    log.info("SIGHUP: reloading configuration");
    server.reload().catch((e) => log.error("reload", { error: String(e) }));
  };
  Deno.addSignalListener("SIGHUP", onHup);
  const sig = await waitForShutdownSignal();
  Deno.removeSignalListener("SIGHUP", onHup);
  log.info("shutting down", { signal: sig });
  await server.stop();
  return 0;
}

export const serveCommand: Command = defineCommand({
  name: "serve",
  summary: "Run every service the environment or env file configures, and the admin API.",
  usage: "serve [--env-file FILE] [-c WG_CONFIG] [-r IN_PORT;OUT_PORT;OUT_HOST;TCP|UDP]... [flags]",
  flags: {
    "env-file": ENV_FILE_FLAG,
    config: WG_CONFIG_FLAG,
    relay: RELAY_FLAG,
    "admin-listen": ADMIN_LISTEN_FLAG,
    ...RELAY_OPTION_FLAGS,
  },
  notes: [
    "Everything else comes from the environment or the env file: WG_TUNNEL_<NAME>, RPS_*/RPC_*, " +
    "MWGP_SERVER_CONFIG/MWGP_CLIENT_CONFIG, WGEDGE_ADMIN_TOKEN, WGEDGE_LOG_LEVEL, ... (README.md lists " +
    "them; `wgedge check-config` shows what they add up to). SIGHUP reloads; SIGINT/SIGTERM stop.",
  ],
  async run(parsed) {
    const { "env-file": envFile, ...flags } = parsed.values as Record<string, string | string[] | undefined>;
    return await runServer({ flags, envFile: envFile as string | undefined });
  },
});
