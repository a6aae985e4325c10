/**
 * `wgedge rpc -c wg-client.conf -r HOST:PORT-REMOTE[/tcp|/udp] ...`: the reverse-proxy client. Brings the
 * tunnel up, checks the server's API answers, registers each route and forwards tunnel connections to the
 * local services. It exits non-zero when the server cannot be reached at start or refuses a route, never
 * exits by itself afterwards (it retries with backoff while the server is away), and deletes its mappings
 * on SIGINT/SIGTERM. Every flag has an RPC_* variable (src/config/rp.ts).
 */
import { type Command, defineCommand } from "./command.ts";
import { ADMIN_LISTEN_ON_REQUEST_FLAG, ENV_FILE_FLAG, rpSharedFlags } from "./config_flags.ts";
import { runServer } from "./serve.ts";

export const rpcCommand: Command = defineCommand({
  name: "rpc",
  summary: "Reverse-proxy client: publish local TCP/UDP services on public ports of an rps.",
  usage:
    "rpc -c wg-client.conf | RPC_CONFIG=...  -r HOST:PORT-REMOTE[/tcp|/udp]... | RPC_ROUTES=...  [flags]",
  flags: {
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      env: "RPC_CONFIG",
      help: "the client's tunnel to the rps server: a wg-quick file or its content inline",
    },
    route: {
      type: "string",
      short: "r",
      multiple: true,
      arg: "HOST:PORT-REMOTE[/tcp|/udp]",
      env: "RPC_ROUTES",
      help:
        "publish local HOST:PORT on the server's public port REMOTE (RPC_ROUTES: comma or space separated)",
    },
    "server-api": {
      type: "string",
      arg: "ADDR[:PORT]",
      default: "the .1 of the tunnel address's /24 (IPv6: ::1 of its /64), port 80",
      env: "RPC_SERVER_API",
      help: "the server's mapping API inside the tunnel",
    },
    heartbeat: {
      type: "string",
      arg: "SECONDS",
      default: "20",
      env: "RPC_HEARTBEAT",
      help: "heartbeat interval (the server expires silent clients)",
    },
    "start-timeout": {
      type: "string",
      arg: "SECONDS",
      default: "30",
      env: "RPC_START_TIMEOUT",
      help:
        "how long to wait for the server at start before exiting with an error (bounds every attempt too)",
    },
    ...rpSharedFlags("RPC"),
    "env-file": ENV_FILE_FLAG,
    "admin-listen": ADMIN_LISTEN_ON_REQUEST_FLAG,
  },
  notes: [
    "Runs until SIGINT/SIGTERM (then deletes its mappings); while the server is away it retries with backoff. " +
    "`wgedge serve` starts the same client from RPC_CONFIG, RPC_ROUTES and the other RPC_* variables.",
  ],
  async run(parsed) {
    const v = parsed.values;
    const flags = {
      "rpc-config": v.config,
      route: v.route,
      "rpc-buffer": v.buffer,
      "server-api": v["server-api"],
      heartbeat: v.heartbeat,
      "start-timeout": v["start-timeout"],
      "rpc-udp-timeout": v["udp-timeout"],
      "admin-listen": v["admin-listen"],
      // -v is WGEDGE_LOG_LEVEL=debug as a flag: the supervisor applies the loaded log settings.
      "log-level": v.verbose ? "debug" : undefined,
    };
    const admin = v["admin-listen"] !== undefined || !!Deno.env.get("WGEDGE_ADMIN_LISTEN");
    return await runServer({ flags, envFile: v["env-file"], only: ["rpc"], admin }, "rpc");
  },
});
