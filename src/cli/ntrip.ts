/**
 * `wgedge ntrip relay -c stations.json`: seed 000's relay stations (pull each source mountpoint, push it to
 * its destination mountpoint, each station through its own tunnel, a SOCKS5 proxy or directly), with the
 * monitor on the admin API (127.0.0.1:8081 unless told otherwise: seed 000's web monitor port).
 *
 * `wgedge ntrip caster --listen ADDR:PORT --mounts FILE`: the NTRIP caster (v1/v2 sources and clients); its
 * admin API only when asked for, so it can run beside a relay on the same machine.
 *
 * Both are `serve` with one service; every flag has its variable, so `wgedge serve` starts either from the
 * environment. SIGHUP re-reads the stations file or the mounts file.
 */
import { type Command, defineCommand, UsageError } from "./command.ts";
import { ADMIN_LISTEN_FLAG, ENV_FILE_FLAG } from "./config_flags.ts";
import { runServer } from "./serve.ts";

export const ntripCommand: Command = defineCommand({
  name: "ntrip",
  summary: "NTRIP: relay stations (pull a caster mountpoint, push it to another) or an NTRIP caster.",
  usage:
    "ntrip relay -c STATIONS.json [--admin-listen HOST:PORT] | ntrip caster --listen ADDR:PORT --mounts FILE",
  positionals: true,
  args: [
    { name: "relay|caster", help: "run the relay stations, or the caster" },
  ],
  flags: {
    config: {
      type: "string",
      short: "c",
      arg: "FILE",
      env: "NTRIP_STATIONS",
      help: "relay: the stations, a JSON array (seed 000's config.json fields), or the JSON itself",
    },
    listen: {
      type: "string",
      arg: "ADDR:PORT",
      default: ":2101",
      env: "NTRIP_CASTER_LISTEN",
      help: "caster: where sources and clients connect",
    },
    mounts: {
      type: "string",
      arg: "FILE",
      env: "NTRIP_CASTER_MOUNTS",
      help: 'caster: the mountpoints, a JSON array of {"mount", "source_password", "users", "str"}',
    },
    "env-file": ENV_FILE_FLAG,
    "admin-listen": {
      ...ADMIN_LISTEN_FLAG,
      help: "the admin API (status, metrics, dashboard, /api/v1/ntrip); relay: on by default, caster: only " +
        "with this flag or its variable",
    },
    verbose: { type: "boolean", short: "v", help: "log at debug level (every station state change)" },
  },
  notes: [
    "NTRIP_SHARD=i/n runs only the stations whose id hashes to shard i of n (xxh64), so n machines can share " +
    "one stations file. NTRIP_TLS_CA_FILE=ca.pem: CA certificates trusted (besides Deno's roots) by the " +
    "src_tls/dst_tls sides, for private casters. `wgedge check-config` validates the stations (file, line " +
    "and field of each problem). " +
    "SIGHUP re-reads the stations: a changed station restarts alone, the others keep streaming.",
  ],
  async run(parsed) {
    const [mode, ...extra] = parsed.positionals;
    if (mode !== "relay" && mode !== "caster") throw new UsageError('expected "relay" or "caster"');
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const v = parsed.values;
    const logLevel = v.verbose ? "debug" : undefined;
    if (mode === "relay") {
      if (v.listen !== undefined || v.mounts !== undefined) {
        throw new UsageError("--listen and --mounts belong to `ntrip caster`");
      }
      const flags = { "ntrip-stations": v.config, "admin-listen": v["admin-listen"], "log-level": logLevel };
      return await runServer({ flags, envFile: v["env-file"], only: ["ntrip"] }, "ntrip");
    }
    if (v.config !== undefined) throw new UsageError("-c/--config (the stations) belongs to `ntrip relay`");
    const flags = {
      "ntrip-caster-listen": v.listen,
      "ntrip-caster-mounts": v.mounts,
      "admin-listen": v["admin-listen"],
      "log-level": logLevel,
    };
    const admin = v["admin-listen"] !== undefined || !!Deno.env.get("WGEDGE_ADMIN_LISTEN");
    return await runServer(
      { flags, envFile: v["env-file"], only: ["ntrip_caster"], admin },
      "ntrip_caster",
    );
  },
});
