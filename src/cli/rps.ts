/**
 * `wgedge rps -c wg-server.conf`: the reverse-proxy server. Brings the tunnel up, serves the port-mapping
 * API on TCP port 80 of its tunnel addresses and opens public listeners on request. Every flag has an RPS_*
 * variable (src/config/rp.ts), so `wgedge serve` starts it from the environment alone. The admin API (with
 * the operator view of all mappings) is served when --admin-listen or WGEDGE_ADMIN_LISTEN is given.
 */
import { type Command, defineCommand } from "./command.ts";
import { ADMIN_LISTEN_ON_REQUEST_FLAG, ENV_FILE_FLAG, rpSharedFlags } from "./config_flags.ts";
import { runServer } from "./serve.ts";

export const rpsCommand: Command = defineCommand({
  name: "rps",
  summary: "Reverse-proxy server: clients behind NAT map public ports through the tunnel.",
  usage:
    "rps -c wg-server.conf | RPS_CONFIG=...  [--allow-ports 10000-20000,8080] [--admin-listen HOST:PORT] [flags]",
  flags: {
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      env: "RPS_CONFIG",
      help: "the server's tunnel: a wg-quick file or its content inline",
    },
    "allow-ports": {
      type: "string",
      arg: "RANGES",
      default: "1024-65535 without wgedge's own ports",
      env: "RPS_ALLOW_PORTS",
      help: 'public ports clients may map, e.g. "10000-20000,8080"',
    },
    "client-ports": {
      type: "string",
      arg: "LIST",
      env: "RPS_CLIENT_PORTS",
      help: 'ports per tunnel client, e.g. "10.0.0.2=10000-10099,10.0.0.3=8080" (within --allow-ports)',
    },
    "max-mappings": {
      type: "string",
      arg: "N",
      default: "64",
      env: "RPS_MAX_MAPPINGS",
      help: "port mappings one client may hold, 1..65535",
    },
    bind: {
      type: "string",
      arg: "ADDR",
      default: "0.0.0.0",
      env: "RPS_BIND",
      help: "address the public listeners bind (:: for IPv6)",
    },
    "api-port": {
      type: "string",
      arg: "N",
      default: "80",
      env: "RPS_API_PORT",
      help: "port of the mapping API on the tunnel addresses (reachable only through the tunnel)",
    },
    "client-expiry": {
      type: "string",
      arg: "SECONDS",
      default: "60",
      env: "RPS_CLIENT_EXPIRY",
      help: "a client silent this long loses its mappings",
    },
    "sweep-interval": {
      type: "string",
      arg: "SECONDS",
      default: "30",
      env: "RPS_SWEEP_INTERVAL",
      help: "how often expired clients are looked for",
    },
    ...rpSharedFlags("RPS"),
    "env-file": ENV_FILE_FLAG,
    "admin-listen": ADMIN_LISTEN_ON_REQUEST_FLAG,
  },
  notes: ["`wgedge serve` starts the same server from RPS_CONFIG and the other RPS_* variables."],
  async run(parsed) {
    const v = parsed.values;
    // Flag names as the rp config section reads them (plain `config` would be the main tunnel's WG_CONFIG).
    const flags = {
      "rps-config": v.config,
      "rps-buffer": v.buffer,
      "allow-ports": v["allow-ports"],
      "client-ports": v["client-ports"],
      "max-mappings": v["max-mappings"],
      bind: v.bind,
      "api-port": v["api-port"],
      "client-expiry": v["client-expiry"],
      "sweep-interval": v["sweep-interval"],
      "rps-udp-timeout": v["udp-timeout"],
      "admin-listen": v["admin-listen"],
      // -v is WGEDGE_LOG_LEVEL=debug as a flag: the supervisor applies the loaded log settings.
      "log-level": v.verbose ? "debug" : undefined,
    };
    const admin = v["admin-listen"] !== undefined || !!Deno.env.get("WGEDGE_ADMIN_LISTEN");
    return await runServer({ flags, envFile: v["env-file"], only: ["rps"], admin }, "rps");
  },
});
