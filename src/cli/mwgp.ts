/** `wgedge mwgp server|client CONFIG`: many WireGuard servers behind one UDP port (shared/spec/mwgp.md). */
import { type Command, parseFlags, UsageError, waitForShutdownSignal } from "./command.ts";
import { loadMwgpClientConfig, loadMwgpServerConfig } from "../config/mwgp.ts";
import { MwgpService } from "../services/mwgp/service.ts";
import { logger } from "../util/log.ts";

const log = logger("mwgp");

export const mwgpCommand: Command = {
  name: "mwgp",
  summary: "mwgp server/client: many WireGuard servers behind one UDP port, optional obfuscation",
  usage: "mwgp server|client CONFIG [--cache-file FILE] [--no-cache] [--skip-load-cache]\n\n" +
    "  CONFIG             mwgp JSON5 config file (or inline JSON5 starting with '{')\n" +
    "  --cache-file FILE  forwarding-table cache (env MWGP_CACHE_FILE; the config's cache_file_path wins)\n" +
    "  --no-cache         neither read nor write the cache file\n" +
    "  --skip-load-cache  start with an empty table but keep writing the cache",
  async run(args: string[]): Promise<number> {
    const parsed = parseFlags(mwgpCommand, args, {
      "cache-file": { type: "string" },
      "no-cache": { type: "boolean" },
      "skip-load-cache": { type: "boolean" },
    });
    if (!parsed) return 0;
    const [mode, configArg, ...extra] = parsed.positionals;
    if (mode !== "server" && mode !== "client") throw new UsageError('expected "server" or "client"');
    if (!configArg) throw new UsageError("missing CONFIG");
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`);
    const warnings: string[] = [];
    const config = mode === "server"
      ? await loadMwgpServerConfig(configArg, "CONFIG", warnings)
      : await loadMwgpClientConfig(configArg, "CONFIG", warnings);
    for (const w of warnings) log.warn(w);
    const svc = await MwgpService.start(config, {
      cacheFile: parsed.values["cache-file"] ?? (Deno.env.get("MWGP_CACHE_FILE") || undefined),
      noCache: parsed.values["no-cache"] ?? false,
      skipLoadCache: parsed.values["skip-load-cache"] ?? false,
    });
    const sig = await waitForShutdownSignal();
    log.info("shutting down", { signal: sig });
    await svc.close();
    return 0;
  },
};
