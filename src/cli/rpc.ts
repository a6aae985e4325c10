/**
 * `wgedge rpc -c wg-client.conf -r HOST:PORT-REMOTE[/tcp|/udp] ...`: the reverse-proxy client. Brings the
 * tunnel up, checks the server's API answers, registers each route and forwards tunnel connections to the
 * local services. It exits non-zero when the server cannot be reached at start or refuses a route, never
 * exits by itself afterwards (it retries with backoff while the server is away), and deletes its mappings
 * on SIGINT/SIGTERM. Every flag has an RPC_* variable (src/config/rp.ts).
 */
import { type Command, parseFlags } from "./command.ts";
import { runServer } from "./serve.ts";
import { configureLogging } from "../util/log.ts";

export const rpcCommand: Command = {
  name: "rpc",
  summary: "Reverse-proxy client: expose local TCP/UDP services on the rps server's public ports.",
  usage:
    "rpc -c wg-client.conf | RPC_CONFIG=...  -r HOST:PORT-REMOTE[/tcp|/udp]... | RPC_ROUTES=...  [-v] [-b KB] [--server-api ADDR[:PORT]] [--heartbeat S] [--start-timeout S] [--udp-timeout S] [--env-file FILE] [--admin-listen HOST:PORT]",
  async run(args) {
    const parsed = parseFlags(this, args, {
      config: { type: "string", short: "c" },
      route: { type: "string", short: "r", multiple: true },
      verbose: { type: "boolean", short: "v" },
      buffer: { type: "string", short: "b" },
      "server-api": { type: "string" },
      heartbeat: { type: "string" },
      "start-timeout": { type: "string" },
      "udp-timeout": { type: "string" },
      "env-file": { type: "string" },
      "admin-listen": { type: "string" },
    }, false);
    if (!parsed) return 0;
    const v = parsed.values;
    if (v.verbose) configureLogging({ level: "debug" });
    const flags = {
      "rpc-config": v.config,
      route: v.route,
      "rpc-buffer": v.buffer,
      "server-api": v["server-api"],
      heartbeat: v.heartbeat,
      "start-timeout": v["start-timeout"],
      "rpc-udp-timeout": v["udp-timeout"],
      "admin-listen": v["admin-listen"],
    };
    const admin = v["admin-listen"] !== undefined || !!Deno.env.get("WGEDGE_ADMIN_LISTEN");
    return await runServer({ flags, envFile: v["env-file"], only: ["rpc"], admin }, "rpc");
  },
};
