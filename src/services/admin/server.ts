/**
 * Serves the admin app with Deno.serve on WGEDGE_ADMIN_LISTEN (default 127.0.0.1:8081). A non-loopback
 * address without WGEDGE_ADMIN_TOKEN is refused: the status page tells an attacker the whole topology.
 */
import { type AdminDeps, createAdminApp } from "./app.ts";
import { isLoopbackHost } from "./auth.ts";
import { logger } from "../../util/log.ts";
import { systemClock } from "../../util/clock.ts";
import { statusCounters, ThroughputSampler } from "./throughput.ts";
import { joinHostPort } from "../../util/host_port.ts";

export const DEFAULT_ADMIN_LISTEN = "127.0.0.1:8081";

export interface AdminListen {
  hostname: string;
  port: number;
}

/** Parses `host:port`, `[v6]:port` or `:port`; throws naming WGEDGE_ADMIN_LISTEN and what was expected. */
export function parseAdminListen(value: string, source = "WGEDGE_ADMIN_LISTEN"): AdminListen {
  const v = value.trim();
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]]*)):(\d{1,5})$/.exec(v);
  const port = m ? Number(m[3]) : NaN;
  if (!m || port > 65535) {
    throw new Error(
      `${source}: expected host:port (e.g. 127.0.0.1:8081, [::1]:8081, 0.0.0.0:8081), got "${v}"`,
    );
  }
  const hostname = m[1] ?? (m[2] === "" ? "0.0.0.0" : m[2]);
  return { hostname, port };
}

export interface AdminServer {
  readonly addr: AdminListen;
  shutdown(): Promise<void>;
}

export function startAdminServer(listen: string, deps: AdminDeps): AdminServer {
  const addr = parseAdminListen(listen);
  const token = typeof deps.token === "function" ? deps.token() : deps.token;
  if (!isLoopbackHost(addr.hostname) && !token) {
    throw new Error(
      `WGEDGE_ADMIN_LISTEN=${listen} is not a loopback address: set WGEDGE_ADMIN_TOKEN (a bearer token) to expose the admin API`,
    );
  }
  // The sparklines' history: sampled from the status sections while the server runs (throughput.ts).
  const sampler = deps.throughput ? undefined : new ThroughputSampler(
    () => statusCounters(deps.registry.status()),
    deps.clock ?? systemClock,
  );
  const app = createAdminApp({
    ...deps,
    ...(sampler ? { throughput: sampler } : {}),
    listenHost: addr.hostname,
  });
  const log = logger("admin");
  const server = Deno.serve({
    hostname: addr.hostname,
    port: addr.port,
    onListen: () => {},
    onError: () => new Response("internal error", { status: 500 }),
  }, app.fetch);
  const actual = server.addr as Deno.NetAddr;
  sampler?.start();
  log.info("admin API listening", {
    listen: joinHostPort(actual.hostname, actual.port),
    auth: token ? "bearer" : "none",
  });
  return {
    addr: { hostname: actual.hostname, port: actual.port },
    shutdown: () => {
      sampler?.stop();
      return server.shutdown();
    },
  };
}
