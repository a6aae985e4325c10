/**
 * Periodic target health check (seed 002's ENABLE_HEALTH_CHECK): a TCP connect through the relay's egress
 * within HEALTH_CHECK_TIMEOUT; after HEALTH_CHECK_RETRIES consecutive failures the relay is marked down (it
 * keeps listening and connections still try), and one success marks it up again. UDP has no handshake to
 * probe, so for UDP relays the check only proves the target name resolves.
 */
import type { Net } from "../../net/types.ts";
import type { Resolver } from "../../net/resolve.ts";
import type { RelayOptions, RelaySpec } from "../../config/relay.ts";
import type { Clock, TimerHandle } from "../../util/clock.ts";
import type { Logger } from "../../util/log.ts";
import type { RelayStats } from "./stats.ts";

export interface HealthDeps {
  egress: Net;
  resolver: Resolver;
  clock: Clock;
  log: Logger;
}

export class HealthChecker {
  #timer?: TimerHandle;
  #consecutiveFailures = 0;
  #running = false;
  #stopped = false;
  #inFlight?: Promise<unknown>;

  constructor(
    private spec: RelaySpec,
    private options: RelayOptions,
    private stats: RelayStats,
    private deps: HealthDeps,
  ) {}

  start(): void {
    // First check soon after start so status shows a real state quickly.
    this.#arm(0);
  }

  #arm(ms: number): void {
    if (this.#stopped) return;
    this.#timer = this.deps.clock.setTimer(() => {
      this.#inFlight = this.checkNow().finally(() => this.#arm(this.options.healthCheckIntervalMs));
    }, ms);
  }

  /** Runs one probe and updates health; concurrent calls share nothing and are skipped. */
  async checkNow(): Promise<boolean> {
    if (this.#running || this.#stopped) return this.stats.health === "up";
    this.#running = true;
    let ok = false;
    let error = "";
    try {
      if (this.spec.protocol === "tcp") {
        const c = await this.deps.egress.dialTcp(this.spec.outHost, this.spec.outPort, {
          timeoutMs: this.options.healthCheckTimeoutMs,
        });
        c.close();
      } else {
        await (this.deps.egress.resolver ?? this.deps.resolver).resolve(this.spec.outHost);
      }
      ok = true;
    } catch (e) {
      error = (e as Error).message ?? String(e);
    } finally {
      this.#running = false;
    }
    if (this.#stopped) return ok;
    this.stats.healthChecks++;
    this.stats.lastHealthCheckMs = this.deps.clock.wallMs();
    if (ok) {
      if (this.stats.health !== "up" && this.stats.health !== "unknown") {
        this.deps.log.info("target up", { relay: this.spec.id });
      }
      this.#consecutiveFailures = 0;
      this.stats.health = "up";
    } else {
      this.stats.healthFailures++;
      this.#consecutiveFailures++;
      if (this.#consecutiveFailures >= this.options.healthCheckRetries && this.stats.health !== "down") {
        this.stats.health = "down";
        this.deps.log.warn("target down", {
          relay: this.spec.id,
          failures: this.#consecutiveFailures,
          error,
        });
      }
    }
    return ok;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.deps.clock.clearTimer(this.#timer);
    await this.#inFlight?.catch(() => {});
  }
}
