/**
 * How `serve` runs the proxies (PROXY_<N>, WGEDGE_SOCKS5/WGEDGE_HTTP_PROXY): each takes a lease on its tunnel
 * from the pool (as relays do) and listens on the host. A reload diffs by proxy id: a proxy whose settings or
 * tunnel changed restarts (its connections close), a removed one stops, a new one starts, the rest keep their
 * connections. A proxy that cannot start (its port is busy, its tunnel fails) is reported in status with
 * state "error" and in the reload outcome; the others run.
 */
import type { ProxySpec } from "../../config/proxy.ts";
import { logger } from "../../util/log.ts";
import type { RunningService, ServiceContext, ServiceStarter } from "../service.ts";
import type { TunnelLease } from "../tunnel/pool.ts";
import { newProxyStats, type ProxyStatusRow, registerProxyReport, statusRow } from "./report.ts";
import { ProxyServer } from "./server.ts";

const log = logger("proxy");

interface Running {
  spec: ProxySpec;
  /** Settings and tunnel key: compared, never shown (it contains the password). */
  print: string;
  server?: ProxyServer;
  lease?: TunnelLease;
  error?: string;
  /** Wall-clock ms of `error`. */
  errorMs?: number;
}

function tunnelName(spec: ProxySpec): string {
  return spec.via.slice("wg:".length);
}

function fingerprint(spec: ProxySpec, ctx: ServiceContext): string {
  return `${JSON.stringify(spec)}#${ctx.tunnels.namedKey(tunnelName(spec)) ?? "none"}`;
}

async function startOne(spec: ProxySpec, ctx: ServiceContext): Promise<Running> {
  const r: Running = { spec, print: fingerprint(spec, ctx) };
  try {
    r.lease = await ctx.tunnels.acquireNamed(tunnelName(spec), `proxy ${spec.id}`);
    const server = new ProxyServer(spec, {
      host: ctx.host,
      egress: r.lease.tunnel.net,
      clock: ctx.clock,
      log,
    });
    server.start();
    r.server = server;
    log.info("proxy listening", {
      proxy: spec.id,
      protocol: spec.protocol,
      listen: spec.listen,
      via: spec.via,
      userRequired: spec.user !== undefined,
    });
  } catch (e) {
    r.lease?.release();
    r.lease = undefined;
    r.error = (e as Error).message ?? String(e);
    r.errorMs = ctx.clock.wallMs();
    log.error("proxy failed to start", { proxy: spec.id, error: r.error });
  }
  return r;
}

async function stopOne(r: Running): Promise<void> {
  await r.server?.stop();
  r.lease?.release();
}

export const proxyStarter: ServiceStarter = {
  name: "proxy",
  configured: (config) => (config.proxies?.length ?? 0) > 0,
  async start(ctx) {
    const running = new Map<string, Running>();
    const rows = (): ProxyStatusRow[] =>
      [...running.values()].map((r) => {
        if (r.server) return statusRow(r.spec, r.server.stats);
        return statusRow(r.spec, {
          ...newProxyStats(),
          state: "error",
          lastError: r.error,
          lastErrorMs: r.errorMs,
        });
      });
    const unregister = registerProxyReport(ctx.registry, rows);

    const apply = async (next: ServiceContext): Promise<string[]> => {
      const wanted = new Map((next.config.proxies ?? []).map((s) => [s.id, s]));
      const stopped: string[] = [], started: string[] = [];
      // Stop first what goes away or changes, so a changed proxy can take its own port again.
      for (const [id, r] of running) {
        const spec = wanted.get(id);
        if (spec && !r.error && fingerprint(spec, next) === r.print) continue;
        await stopOne(r);
        running.delete(id);
        stopped.push(id);
      }
      for (const [id, spec] of wanted) {
        if (running.has(id)) continue;
        running.set(id, await startOne(spec, next));
        started.push(id);
      }
      if (stopped.length || started.length) {
        log.info("proxies applied", { started: started.join(",") || "-", stopped: stopped.join(",") || "-" });
      }
      // The server's own errors start with the proxy's id already ("PROXY_2: listen ..."): say it once.
      return [...running.values()].filter((r) => r.error).map((r) =>
        r.error!.startsWith(`${r.spec.id}:`) ? `proxy ${r.error}` : `proxy ${r.spec.id}: ${r.error}`
      );
    };

    await apply(ctx);
    const service: RunningService = {
      name: "proxy",
      reload: apply,
      async stop() {
        for (const r of running.values()) await stopOne(r);
        running.clear();
        unregister();
      },
    };
    return service;
  },
};
