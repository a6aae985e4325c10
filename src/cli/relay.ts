/**
 * `wgedge relay`: only the port relays (seed 002), from `-r` flags and/or RELAY_N in the environment or an
 * env file. The admin API is served only when asked for (--admin-listen or WGEDGE_ADMIN_LISTEN), so a relay
 * next to a `serve` does not fight over its port.
 */
import { type Command, parseFlags } from "./command.ts";
import { runServer } from "./serve.ts";

export const relayCommand: Command = {
  name: "relay",
  summary:
    "Relay TCP/UDP ports to host:port (RELAY_N variables or -r), optionally via a tunnel or SOCKS5 proxy.",
  usage:
    'relay [-r "in_port;out_port;out_host;TCP|UDP[;bind=..;via=..;udp_timeout=..;proxy_protocol=v1|v2]"]... [--env-file FILE] [--connect-timeout S] [--logging y|n] [--health-check y|n] [--admin-listen HOST:PORT]',
  async run(args) {
    const parsed = parseFlags(this, args, {
      relay: { type: "string", short: "r", multiple: true },
      "env-file": { type: "string" },
      "admin-listen": { type: "string" },
      "connect-timeout": { type: "string" },
      logging: { type: "string" },
      "health-check": { type: "string" },
    }, false);
    if (!parsed) return 0;
    const { "env-file": envFile, ...flags } = parsed.values as Record<string, string | string[] | undefined>;
    const admin = flags["admin-listen"] !== undefined || !!Deno.env.get("WGEDGE_ADMIN_LISTEN");
    return await runServer(
      { flags, envFile: envFile as string | undefined, only: ["relay"], admin },
      "relay",
    );
  },
};
