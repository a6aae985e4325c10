/**
 * How services report into the admin surface. Each service registers a status section (a function returning
 * JSON-safe data, never secrets) and reports metrics into the shared MetricsRegistry; operator routes (port
 * mappings) are added as Hono route installers. The admin app reads this registry and knows no service.
 */
import type { Hono } from "hono";
import { MetricsRegistry } from "./admin/metrics.ts";
import { unexpectedErrors } from "../util/safety_net.ts";

export type StatusProvider = () => unknown;
export type RouteInstaller = (app: Hono) => void;

export class ServiceRegistry {
  readonly metrics = new MetricsRegistry();
  readonly #sections = new Map<string, StatusProvider>();
  readonly #routes: RouteInstaller[] = [];
  #routesVersion = 0;
  readonly startedAtMs: number;

  constructor(nowMs: number = Date.now()) {
    this.startedAtMs = nowMs;
    const unexpected = this.metrics.counter(
      "wgedge_unexpected_errors_total",
      "Errors that escaped every handler (each is a bug); the process logged them and kept running.",
    );
    this.metrics.addCollector(() => unexpected.set({}, unexpectedErrors()));
  }

  /** Registers the status section `name` (e.g. "relays", "tunnels"); returns the unregister function. */
  registerStatus(name: string, provider: StatusProvider): () => void {
    if (this.#sections.has(name)) throw new Error(`status section "${name}" already registered`);
    this.#sections.set(name, provider);
    return () => {
      if (this.#sections.get(name) === provider) this.#sections.delete(name);
    };
  }

  /** True while a status section of that name is registered. */
  hasSection(name: string): boolean {
    return this.#sections.has(name);
  }

  /**
   * Adds API routes (mounted under the admin app, behind its auth); returns the removal. The app picks up
   * changes on its next request (a service started or restarted by a reload brings its routes along).
   */
  addRoutes(install: RouteInstaller): () => void {
    this.#routes.push(install);
    this.#routesVersion++;
    return () => {
      const i = this.#routes.indexOf(install);
      if (i < 0) return;
      this.#routes.splice(i, 1);
      this.#routesVersion++;
    };
  }

  get routes(): readonly RouteInstaller[] {
    return this.#routes;
  }

  /** Changes whenever routes are added or removed. */
  get routesVersion(): number {
    return this.#routesVersion;
  }

  /** Every section's current status; a failing provider reports its error instead of breaking the page. */
  status(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const [name, provider] of this.#sections) {
      try {
        out[name] = provider();
      } catch (e) {
        out[name] = { error: (e as Error).message ?? String(e) };
      }
    }
    return out;
  }
}
