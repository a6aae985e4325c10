/**
 * The supervisor: owns every service of a process, its tunnel pool and its admin server, and applies a
 * reload as a diff.
 *
 * start():  load the configuration, apply the log settings, start each configured service in starter order
 *           (tunnels first, so services find the named tunnels already up), then the admin API.
 * reload(): load again; a configuration with errors is rejected whole and the running one kept. Otherwise,
 *           starter by starter: a service no longer configured stops, a newly configured one starts, a running
 *           one applies the new configuration itself (keeping what did not change). Log level/format, the
 *           admin token and the admin listen address are applied too. The outcome (time, success, partial
 *           with the problems, or rejected with the errors) is kept for status, the dashboard and metrics.
 * stop():   services in reverse order, the admin API, then whatever tunnels are still open.
 */
import { type Config, ConfigErrors, isConfigError, type LoadedConfig } from "../config/mod.ts";
import type { Net } from "../net/types.ts";
import { hostNet } from "../net/host.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { configureLogging, logger } from "../util/log.ts";
import { ServiceRegistry } from "./registry.ts";
import { type AdminServer, startAdminServer } from "./admin/server.ts";
import type { RunningService, ServiceContext, ServiceStarter } from "./service.ts";
import { TunnelProvider } from "./service.ts";
import { TunnelPool } from "./tunnel/pool.ts";
import { reportTunnels } from "./tunnel/report.ts";

const log = logger("supervisor");

export interface SupervisorOptions {
  /** Loads (and validates) the configuration; called at start and on every reload. */
  load(): Promise<LoadedConfig>;
  starters: readonly ServiceStarter[];
  /** Only these services (the `relay` command runs only "relay"). */
  only?: readonly string[];
  /** Serve the admin API (default true). */
  admin?: boolean;
  /** Apply WGEDGE_LOG_LEVEL/WGEDGE_LOG_FORMAT from the configuration (default true). */
  applyLogging?: boolean;
  version?: string;
  host?: Net;
  pool?: TunnelPool;
  registry?: ServiceRegistry;
  clock?: Clock;
}

export type ReloadResult = "success" | "partial" | "rejected";

export interface ReloadOutcome {
  /** ISO time the reload finished. */
  at: string;
  result: ReloadResult;
  /** What was not applied: configuration errors (rejected) or services' problems (partial). */
  errors: string[];
}

function messages(e: unknown): string[] {
  if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
  return [(e as Error).message ?? String(e)];
}

export class Supervisor {
  readonly registry: ServiceRegistry;
  readonly pool: TunnelPool;
  readonly #opts: SupervisorOptions;
  readonly #host: Net;
  readonly #clock: Clock;
  readonly #running = new Map<string, RunningService>();
  #config!: Config;
  #admin?: AdminServer;
  #adminListen?: string;
  #unreport: (() => void)[] = [];
  #reloading: Promise<unknown> = Promise.resolve();
  #last?: ReloadOutcome;
  #lastSuccessMs: number;
  readonly #counts: Record<ReloadResult, number> = { success: 0, partial: 0, rejected: 0 };

  constructor(opts: SupervisorOptions) {
    this.#opts = opts;
    this.#clock = opts.clock ?? systemClock;
    this.#host = opts.host ?? hostNet;
    this.registry = opts.registry ?? new ServiceRegistry(this.#clock.wallMs());
    this.pool = opts.pool ?? new TunnelPool();
    this.#lastSuccessMs = this.#clock.wallMs();
  }

  /** The configuration the services run with (the last one accepted). */
  get config(): Config {
    return this.#config;
  }

  get serviceNames(): string[] {
    return [...this.#running.keys()];
  }

  get adminAddr(): { hostname: string; port: number } | undefined {
    return this.#admin?.addr;
  }

  get lastReload(): ReloadOutcome | undefined {
    return this.#last;
  }

  #context(config: Config): ServiceContext {
    return {
      config,
      registry: this.registry,
      host: this.#host,
      tunnels: new TunnelProvider(this.pool, config),
      clock: this.#clock,
      version: this.#opts.version,
      requestReload: (why) => {
        log.info("reloading configuration", { why });
        this.reload().catch((e) => log.error("reload failed", { error: (e as Error).message }));
      },
    };
  }

  #wanted(s: ServiceStarter, config: Config): boolean {
    return (!this.#opts.only || this.#opts.only.includes(s.name)) && s.configured(config);
  }

  async #load(): Promise<Config> {
    const { config, warnings } = await this.#opts.load();
    for (const w of warnings) log.warn(w);
    return config;
  }

  #applyLogging(config: Config): void {
    if (this.#opts.applyLogging === false) return;
    configureLogging({ level: config.log.level, json: config.log.format === "json" });
  }

  /** Starts everything; on any failure stops what started and rethrows (config errors as ConfigErrors). */
  async start(): Promise<void> {
    this.#config = await this.#load();
    this.#applyLogging(this.#config);
    this.#unreport.push(reportTunnels(this.pool, this.registry), this.#reportReloads());
    const ctx = this.#context(this.#config);
    try {
      for (const starter of this.#opts.starters) {
        if (!this.#wanted(starter, this.#config)) continue;
        this.#running.set(starter.name, await starter.start(ctx));
        log.info("service started", { service: starter.name });
      }
      if (this.#opts.admin !== false) this.#startAdmin(this.#config.admin.listen);
    } catch (e) {
      await this.stop();
      throw e;
    }
  }

  #startAdmin(listen: string): void {
    this.#admin = startAdminServer(listen, {
      registry: this.registry,
      token: () => this.#config.admin.token,
      version: this.#opts.version,
      clock: this.#clock,
    });
    this.#adminListen = listen;
  }

  /** Moves the admin API when its listen address changed; on failure it stays where it was. */
  async #reloadAdmin(config: Config): Promise<string[]> {
    if (this.#opts.admin === false || !this.#admin || config.admin.listen === this.#adminListen) return [];
    const old = this.#admin, oldListen = this.#adminListen!;
    // The new address may overlap the old one (same port, another host): free it first.
    await old.shutdown();
    try {
      this.#startAdmin(config.admin.listen);
      log.info("admin API moved", { from: oldListen, to: config.admin.listen });
      return [];
    } catch (e) {
      this.#startAdmin(oldListen);
      return [
        `admin API: cannot listen on ${config.admin.listen}: ${(e as Error).message}; still on ${oldListen}`,
      ];
    }
  }

  /** Re-reads the configuration and applies the difference. Reloads queue behind each other. */
  reload(): Promise<ReloadOutcome> {
    const run = this.#reloading.then(() => this.#reload());
    this.#reloading = run.catch(() => {});
    return run;
  }

  async #reload(): Promise<ReloadOutcome> {
    let config: Config;
    try {
      config = await this.#load();
    } catch (e) {
      if (!isConfigError(e)) throw e;
      const errors = messages(e);
      log.error("reload rejected: the configuration has errors; the running configuration is kept", {
        errors: errors.length,
      });
      for (const w of e instanceof ConfigErrors ? e.warnings : []) log.warn(w);
      for (const m of errors) log.error(m);
      return this.#record("rejected", errors);
    }
    const previous = this.#config;
    this.#config = config; // the admin token getter reads it: a rotated token applies from here on
    this.#applyLogging(config);
    const ctx = this.#context(config);
    const problems: string[] = [];
    for (const starter of this.#opts.starters) {
      const name = starter.name;
      const running = this.#running.get(name);
      const wanted = this.#wanted(starter, config);
      try {
        if (running && !wanted) {
          this.#running.delete(name);
          await running.stop();
          log.info("service stopped: no longer configured", { service: name });
        } else if (running) {
          problems.push(...(await running.reload?.(ctx) ?? []));
        } else if (wanted) {
          this.#running.set(name, await starter.start(ctx));
          log.info("service started", { service: name });
        }
      } catch (e) {
        problems.push(`${name}: ${(e as Error).message ?? String(e)}`);
        log.error("reload of a service failed", { service: name, error: (e as Error).message });
      }
    }
    problems.push(...await this.#reloadAdmin(config));
    if (previous.admin.token !== config.admin.token) log.info("admin token changed; the new one applies now");
    return this.#record(problems.length ? "partial" : "success", problems);
  }

  #record(result: ReloadResult, errors: string[]): ReloadOutcome {
    const now = this.#clock.wallMs();
    this.#counts[result]++;
    if (result === "success") this.#lastSuccessMs = now;
    this.#last = { at: new Date(now).toISOString(), result, errors };
    if (result === "success") log.info("reload applied");
    else if (result === "partial") log.warn("reload applied in part", { problems: errors.join("; ") });
    return this.#last;
  }

  #reportReloads(): () => void {
    const unStatus = this.registry.registerStatus("reload", () => ({
      lastResult: this.#last?.result ?? "none yet",
      lastAt: this.#last?.at ?? null,
      lastSuccessAt: new Date(this.#lastSuccessMs).toISOString(),
      errors: this.#last?.errors ?? [],
      reloads: this.#counts.success + this.#counts.partial + this.#counts.rejected,
    }));
    const m = this.registry.metrics;
    const total = m.counter("wgedge_reload_total", "Configuration reloads (SIGHUP) by result.", ["result"]);
    const ok = m.gauge(
      "wgedge_config_last_reload_successful",
      "1 when the last reload (or the start) applied the whole configuration, else 0.",
    );
    const at = m.gauge(
      "wgedge_config_last_reload_success_timestamp_seconds",
      "Unix time of the last fully applied configuration (start or reload).",
    );
    const unCollect = m.addCollector(() => {
      for (const [result, n] of Object.entries(this.#counts)) total.set({ result }, n);
      ok.set({}, !this.#last || this.#last.result === "success" ? 1 : 0);
      at.set({}, Math.floor(this.#lastSuccessMs / 1000));
    });
    return () => {
      unStatus();
      unCollect();
    };
  }

  async stop(): Promise<void> {
    await this.#reloading;
    for (const [name, s] of [...this.#running].reverse()) {
      try {
        await s.stop();
      } catch (e) {
        log.warn("stop failed", { service: name, error: (e as Error).message });
      }
    }
    this.#running.clear();
    await this.#admin?.shutdown();
    this.#admin = undefined;
    for (const u of this.#unreport.splice(0)) u();
    this.pool.closeAll();
  }
}
