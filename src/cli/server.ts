/**
 * What `wgedge serve` (and relay, rps, rpc, ntrip: serve with one service) runs: hands the configuration
 * loader and every service starter to the supervisor (src/services/supervisor.ts), reloads on SIGHUP and
 * stops cleanly on SIGINT/SIGTERM. serve.ts loads this module when the command runs.
 */
import { UsageError, waitForShutdownSignal } from "./command.ts";
import { ConfigErrors, isConfigError, loadConfig } from "../config/mod.ts";
import { Supervisor } from "../services/supervisor.ts";
import { SERVICE_STARTERS } from "../services/starters.ts";
import { VERSION } from "./version.ts";
import { logger } from "../util/log.ts";

const log = logger("serve");

export interface ServeOptions {
  /** Flags by long name, as the config loader takes them. */
  flags: Record<string, string | boolean | string[] | undefined>;
  envFile?: string;
  /** Only these services (the `relay` command passes ["relay"]). */
  only?: string[];
  /** Serve the admin API (default true). */
  admin?: boolean;
  env?: Record<string, string | undefined>;
}

function printConfigErrors(e: unknown): void {
  const errs = e instanceof ConfigErrors ? e.errors : [e as Error];
  for (const w of e instanceof ConfigErrors ? e.warnings : []) console.error(`warning: ${w}`);
  for (const x of errs) console.error(x.message);
}

/** The supervisor for these options: the config is read from flags, the environment and the env file. */
export function createSupervisor(opts: ServeOptions): Supervisor {
  return new Supervisor({
    load: () =>
      loadConfig({ env: opts.env ?? Deno.env.toObject(), flags: opts.flags, envFile: opts.envFile }),
    starters: SERVICE_STARTERS,
    only: opts.only,
    admin: opts.admin,
    version: VERSION,
  });
}

/** Runs until SIGINT/SIGTERM; SIGHUP reloads. Returns the exit code. */
export async function runServer(opts: ServeOptions, requireService?: string): Promise<number> {
  const server = createSupervisor(opts);
  try {
    await server.start();
  } catch (e) {
    if (isConfigError(e)) {
      printConfigErrors(e);
      return 1;
    }
    throw e;
  }
  if (requireService && !server.serviceNames.includes(requireService)) {
    await server.stop();
    throw new UsageError(`nothing to do: no ${requireService} configured`);
  }
  if (server.serviceNames.length === 0) {
    log.warn("no service configured (set RELAY_N, WG_CONFIG, ...); serving the admin API only");
  }
  const onHup = () => {
    log.info("SIGHUP: reloading configuration");
    server.reload().catch((e) => log.error("reload", { error: String(e) }));
  };
  Deno.addSignalListener("SIGHUP", onHup);
  const sig = await waitForShutdownSignal();
  Deno.removeSignalListener("SIGHUP", onHup);
  log.info("shutting down", { signal: sig });
  await server.stop();
  return 0;
}
