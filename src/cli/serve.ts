/**
 * `wgedge serve`: the one entry point a VPS needs. The command table only declares it; what it runs
 * (server.ts: the supervisor, every service) is imported when it runs, so `wgedge --help`, `version` and the
 * key commands do not load the services.
 */
import { type Command, defineCommand } from "./command.ts";
import {
  ADMIN_LISTEN_FLAG,
  ENV_FILE_FLAG,
  RELAY_FLAG,
  RELAY_OPTION_FLAGS,
  UAPI_DIR_FLAG,
  WG_CONFIG_FLAG,
} from "./config_flags.ts";
import type { ServeOptions } from "./server.ts";

/** server.ts's runServer, loaded on the first call (relay, rps, rpc and ntrip call it too). */
export async function runServer(opts: ServeOptions, requireService?: string): Promise<number> {
  const server = await import("./server.ts");
  return await server.runServer(opts, requireService);
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
    "uapi-dir": UAPI_DIR_FLAG,
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
