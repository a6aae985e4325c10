/** `wgedge mwgp server|client CONFIG`: many WireGuard servers behind one UDP port (shared/spec/mwgp.md). */
import { type Command, defineCommand, UsageError, waitForShutdownSignal } from "./command.ts";
import { logger } from "../util/log.ts";

const log = logger("mwgp");

export const mwgpCommand: Command = defineCommand({
  name: "mwgp",
  summary: "mwgp server/client: many WireGuard servers on one UDP port, optionally obfuscated.",
  usage: "mwgp server|client CONFIG [--cache-file FILE] [--no-cache] [--skip-load-cache]",
  positionals: true,
  args: [
    {
      name: "server|client",
      help: "run the mwgp server (one port, many WireGuard servers) or the client side",
    },
    { name: "CONFIG", help: "mwgp JSON5 config file, or inline JSON5 starting with '{'" },
  ],
  flags: {
    "cache-file": {
      type: "string",
      arg: "FILE",
      env: "MWGP_CACHE_FILE",
      help: "forwarding-table cache kept across restarts (the config's cache_file_path wins over both)",
    },
    "no-cache": { type: "boolean", env: "MWGP_NO_CACHE", help: "neither read nor write the cache file" },
    "skip-load-cache": {
      type: "boolean",
      env: "MWGP_SKIP_LOAD_CACHE",
      help: "start with an empty table but keep writing the cache",
    },
  },
  notes: ["Under `wgedge serve`, MWGP_SERVER_CONFIG / MWGP_CLIENT_CONFIG start the same services."],
  async run(parsed): Promise<number> {
    const [mode, configArg, ...extra] = parsed.positionals;
    if (mode !== "server" && mode !== "client") throw new UsageError('expected "server" or "client"');
    if (!configArg) throw new UsageError("missing CONFIG");
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    // Loaded when the command runs (the command table stays light for --help and the other commands).
    const [{ loadMwgpClientConfig, loadMwgpServerConfig, mwgpEnvBool }, { MwgpService }] = await Promise.all([
      import("../config/mwgp.ts"),
      import("../services/mwgp/service.ts"),
    ]);
    const warnings: string[] = [];
    const config = mode === "server"
      ? await loadMwgpServerConfig(configArg, "CONFIG", warnings)
      : await loadMwgpClientConfig(configArg, "CONFIG", warnings);
    // As mwgp (viper): a flag given on the command line wins, else its environment variable.
    const envBool = (name: string) => mwgpEnvBool(name, Deno.env.get(name), warnings, "environment");
    const noCache = parsed.values["no-cache"] ?? envBool("MWGP_NO_CACHE");
    const skipLoadCache = parsed.values["skip-load-cache"] ?? envBool("MWGP_SKIP_LOAD_CACHE");
    for (const w of warnings) log.warn(w);
    const svc = await MwgpService.start(config, {
      cacheFile: parsed.values["cache-file"] ?? (Deno.env.get("MWGP_CACHE_FILE") || undefined),
      noCache,
      skipLoadCache,
    });
    const sig = await waitForShutdownSignal();
    log.info("shutting down", { signal: sig });
    await svc.close();
    return 0;
  },
});
