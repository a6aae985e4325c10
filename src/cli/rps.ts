/**
 * `wgedge rps -c wg-server.conf`: the reverse-proxy server. Brings the tunnel up, serves the port-mapping
 * API on TCP port 80 of its tunnel addresses and opens public listeners on request. Every flag has an RPS_*
 * variable (src/config/rp.ts), so `wgedge serve` starts it from the environment alone. The admin API (with
 * the operator view of all mappings) is served when --admin-listen or WGEDGE_ADMIN_LISTEN is given.
 */
import { type Command, parseFlags } from "./command.ts";
import { runServer } from "./serve.ts";
import { configureLogging } from "../util/log.ts";

export const rpsCommand: Command = {
  name: "rps",
  summary:
    "Reverse-proxy server: clients behind NAT map public ports through the tunnel (REST API inside it).",
  usage:
    "rps -c wg-server.conf | RPS_CONFIG=...  [-v] [-b KB] [--allow-ports 10000-20000,8080] [--max-mappings N] [--bind ADDR] [--api-port N] [--client-expiry S] [--sweep-interval S] [--udp-timeout S] [--env-file FILE] [--admin-listen HOST:PORT]",
  async run(args) {
    const parsed = parseFlags(this, args, {
      config: { type: "string", short: "c" },
      verbose: { type: "boolean", short: "v" },
      buffer: { type: "string", short: "b" },
      "allow-ports": { type: "string" },
      "max-mappings": { type: "string" },
      bind: { type: "string" },
      "api-port": { type: "string" },
      "client-expiry": { type: "string" },
      "sweep-interval": { type: "string" },
      "udp-timeout": { type: "string" },
      "env-file": { type: "string" },
      "admin-listen": { type: "string" },
    }, false);
    if (!parsed) return 0;
    const v = parsed.values;
    if (v.verbose) configureLogging({ level: "debug" });
    // Flag names as the rp config section reads them (plain `config` would be the main tunnel's WG_CONFIG).
    const flags = {
      "rps-config": v.config,
      "rps-buffer": v.buffer,
      "allow-ports": v["allow-ports"],
      "max-mappings": v["max-mappings"],
      bind: v.bind,
      "api-port": v["api-port"],
      "client-expiry": v["client-expiry"],
      "sweep-interval": v["sweep-interval"],
      "rps-udp-timeout": v["udp-timeout"],
      "admin-listen": v["admin-listen"],
    };
    const admin = v["admin-listen"] !== undefined || !!Deno.env.get("WGEDGE_ADMIN_LISTEN");
    return await runServer({ flags, envFile: v["env-file"], only: ["rps"], admin }, "rps");
  },
};
