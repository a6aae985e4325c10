/**
 * `wgedge relay`: only the port relays (seed 002), from `-r` flags and/or RELAY_N in the environment or an
 * env file. The admin API is served only when asked for (--admin-listen or WGEDGE_ADMIN_LISTEN), so a relay
 * next to a `serve` does not fight over its port.
 */
import { type Command, defineCommand } from "./command.ts";
import { runServer } from "./serve.ts";
import {
  ADMIN_LISTEN_ON_REQUEST_FLAG,
  ENV_FILE_FLAG,
  RELAY_FLAG,
  RELAY_OPTION_FLAGS,
} from "./config_flags.ts";

export const relayCommand: Command = defineCommand({
  name: "relay",
  summary: "Relay TCP/UDP ports to host:port, optionally through a tunnel or a SOCKS5 proxy.",
  usage: 'relay [-r "IN_PORT;OUT_PORT;OUT_HOST;TCP|UDP[;OPTION=VALUE]..."]... [--env-file FILE] [flags]',
  flags: {
    relay: RELAY_FLAG,
    "env-file": ENV_FILE_FLAG,
    "admin-listen": ADMIN_LISTEN_ON_REQUEST_FLAG,
    ...RELAY_OPTION_FLAGS,
  },
  notes: [
    "Relays come from -r flags and RELAY_1, RELAY_2, ... (environment or env file; gaps allowed). " +
    "KEEPALIVE_IDLE/INTVL/CNT and HEALTH_CHECK_TIMEOUT/RETRIES/INTERVAL have no flags; set them in the " +
    "environment. SIGHUP reloads the relays.",
  ],
  async run(parsed) {
    const { "env-file": envFile, ...flags } = parsed.values as Record<string, string | string[] | undefined>;
    const admin = flags["admin-listen"] !== undefined || !!Deno.env.get("WGEDGE_ADMIN_LISTEN");
    return await runServer(
      { flags, envFile: envFile as string | undefined, only: ["relay"], admin },
      "relay",
    );
  },
});
