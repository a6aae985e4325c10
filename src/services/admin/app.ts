/**
 * The admin HTTP API (Hono): `GET /healthz`, `GET /metrics` (Prometheus text), `GET /api/v1/status` (JSON),
 * `GET /` (dashboard), plus operator routes services add through the ServiceRegistry.
 *
 * With a token every route except /healthz needs `Authorization: Bearer <token>` (or Basic with the token as
 * password, for browsers). Without a token only loopback Host values are answered, and state-changing
 * requests need a JSON content type or `X-Wgedge: 1` (origin_guard.ts). Everything that leaves here goes
 * through redactDeep/redactString first.
 */
import { Hono } from "hono";
import type { ServiceRegistry } from "../registry.ts";
import { isAuthorized } from "./auth.ts";
import { ADMIN_REQUEST_HEADER, hostRefusal, stateChangeRefusal } from "./origin_guard.ts";
import { renderDashboard } from "./dashboard.ts";
import { redactDeep, redactUrlCredentials as redactString } from "../../util/secret.ts";
import type { Clock } from "../../util/clock.ts";
import { systemClock } from "../../util/clock.ts";
import type { ThroughputHistory } from "./throughput.ts";

export interface AdminDeps {
  registry: ServiceRegistry;
  /**
   * Bearer token, or a function returning the current one (read per request: a reload may rotate it);
   * undefined = no auth (loopback only; the server refuses a public bind without one).
   */
  token?: string | (() => string | undefined);
  version?: string;
  clock?: Clock;
  /** Dashboard refresh period in seconds (default 5). */
  refreshSeconds?: number;
  /** The throughput history the dashboard draws sparklines from (startAdminServer runs one). */
  throughput?: ThroughputHistory;
  /** The listen hostname (WGEDGE_ADMIN_LISTEN's host): a Host value accepted besides the loopback names. */
  listenHost?: string;
}

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Marks the services app's "no such route" answer, so the admin app's own 404 applies instead. */
const UNROUTED = "x-wgedge-unrouted";

export function createAdminApp(deps: AdminDeps): Hono {
  const clock = deps.clock ?? systemClock;
  const app = new Hono();

  // Operator routes of services (port mappings), rebuilt when a service adds or removes its routes.
  let routes: Hono | undefined;
  let routesVersion = -1;
  const servicesApp = (): Hono => {
    if (routes && routesVersion === deps.registry.routesVersion) return routes;
    routes = new Hono();
    routes.notFound((c) => c.body(null, 404, { [UNROUTED]: "1" }));
    routes.onError((err) => {
      throw err;
    });
    for (const install of deps.registry.routes) install(routes);
    routesVersion = deps.registry.routesVersion;
    return routes;
  };

  app.onError((err, c) => {
    // Never echo internals (could carry a value from config); the message is generic and the status 500.
    const status = (err as { status?: number }).status;
    if (typeof status === "number" && status >= 400 && status < 500) {
      return c.json({ error: redactString(err.message) }, status as 400);
    }
    return c.json({ error: "internal error" }, 500);
  });
  app.notFound((c) => c.json({ error: "not found" }, 404));

  // The token is read per request, so a reload that rotates WGEDGE_ADMIN_TOKEN takes effect at once.
  const currentToken = typeof deps.token === "function" ? deps.token : () => deps.token as string | undefined;

  app.get("/healthz", (c) => c.text("ok\n"));

  // Browser-borne requests (origin_guard.ts): DNS rebinding when there is no token, cross-site state changes.
  app.use("*", async (c, next) => {
    if (currentToken() === undefined) {
      const refused = hostRefusal(c.req.header("host") ?? new URL(c.req.url).host, deps.listenHost);
      if (refused) return c.json({ error: refused }, 421);
    }
    const csrf = stateChangeRefusal(
      c.req.method,
      c.req.header("content-type"),
      c.req.header(ADMIN_REQUEST_HEADER),
    );
    if (csrf) return c.json({ error: csrf }, 403);
    await next();
  });

  app.use("*", async (c, next) => {
    const token = currentToken();
    if (token === undefined || c.req.path === "/healthz") return await next();
    if (!isAuthorized(c.req.header("authorization"), token)) {
      c.header("WWW-Authenticate", 'Basic realm="wgedge", charset="UTF-8"');
      return c.json({ error: "unauthorized: send Authorization: Bearer <WGEDGE_ADMIN_TOKEN>" }, 401);
    }
    await next();
  });

  const status = () =>
    redactDeep({
      service: "wgedge",
      version: deps.version ?? "dev",
      uptimeSeconds: Math.max(0, Math.round((clock.wallMs() - deps.registry.startedAtMs) / 1000)),
      ...deps.registry.status(),
    }) as Record<string, unknown>;

  app.get("/metrics", (c) => {
    c.header("Content-Type", PROMETHEUS_CONTENT_TYPE);
    return c.body(redactString(deps.registry.metrics.render()));
  });
  app.get("/api/v1/status", (c) => c.json(status()));
  app.get(
    "/",
    (c) => c.html(renderDashboard(status(), deps.refreshSeconds ?? 5, clock.wallMs(), deps.throughput)),
  );

  app.all("*", async (c, next) => {
    const res = await servicesApp().fetch(c.req.raw);
    if (res.headers.has(UNROUTED)) return await next();
    return res;
  });
  return app;
}
