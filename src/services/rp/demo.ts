/**
 * The reverse-proxy story on loopback, in one process (for `wgedge demo`): an rps and an rpc joined by a
 * real userspace WireGuard tunnel over 127.0.0.1, a built-in hello HTTP service "behind the NAT" exposed on
 * a public port, and the admin dashboard showing the mapping with its counters.
 */
import { openTunnel, type Tunnel } from "../../net/tunnels.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../../crypto/x25519.ts";
import { loopbackPeerConfig, type WgConfig } from "../../wireguard/config.ts";
import { ServiceRegistry } from "../registry.ts";
import { type AdminServer, startAdminServer } from "../admin/server.ts";
import { RpcService, RpsService, type RpTunnel } from "./service.ts";
import { parseRoute } from "./client.ts";
import { joinHostPort } from "../../util/host_port.ts";

export interface ReverseProxyDemoOptions {
  /** Public port to ask for (default 8080; a free port is used when it is taken). */
  publicPort?: number;
  /** Admin listen address for the dashboard (default 127.0.0.1:8081, a free port when taken); null = none. */
  adminListen?: string | null;
  registry?: ServiceRegistry;
  version?: string;
}

export interface ReverseProxyDemo {
  /** curl this: public port on the "server" -> tunnel -> "client" -> hello service. */
  publicUrl: string;
  /** The hello service itself (what the client exposes). */
  localUrl: string;
  dashboardUrl?: string;
  rps: RpsService;
  rpc: RpcService;
  registry: ServiceRegistry;
  /** Human-readable summary lines to print. */
  lines: string[];
  stop(): Promise<void>;
}

const SERVER_V4 = "10.98.0.1", CLIENT_V4 = "10.98.0.2";

/** One side of the rp demo: a /24 and a /64 on the tunnel, the other side as its only peer. */
function config(
  own: Uint8Array,
  peer: Uint8Array,
  addr: [string, string],
  allowed: [string, string],
  port?: number,
): WgConfig {
  return loopbackPeerConfig({
    source: "demo",
    privateKey: own,
    peerPublicKey: publicKey(peer),
    addresses: [{ address: addr[0], prefix: 24 }, { address: addr[1], prefix: 64 }],
    peerAddresses: allowed,
    endpointPort: port,
    persistentKeepalive: port ? 25 : undefined,
  });
}

function asRpTunnel(t: Tunnel, addresses: string[]): RpTunnel {
  return { net: t.net, addresses, close: () => t.close() };
}

function portFree(port: number): boolean {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
    return true;
  } catch {
    return false;
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** Starts the demo; stop() tears it all down. */
export async function startReverseProxyDemo(opts: ReverseProxyDemoOptions = {}): Promise<ReverseProxyDemo> {
  const registry = opts.registry ?? new ServiceRegistry();
  const started: (() => Promise<void> | void)[] = [];
  const stopAll = async () => {
    for (const s of started.splice(0).reverse()) {
      try {
        await s();
      } catch { /* best effort */ }
    }
  };
  try {
    const hello = new AbortController();
    let hits = 0;
    const helloServer = Deno.serve(
      { hostname: "127.0.0.1", port: 0, signal: hello.signal, onListen: () => {} },
      (req) => {
        hits++;
        return new Response(
          `Hello from a service behind NAT, reached through wgedge rps -> WireGuard -> rpc.\n` +
            `You asked for ${new URL(req.url).pathname}; this service has answered ${hits} request(s).\n`,
          { headers: { "content-type": "text/plain; charset=utf-8" } },
        );
      },
    );
    started.push(() => (hello.abort(), helloServer.finished));

    const serverKey = generatePrivateKey(), clientKey = generatePrivateKey();
    const serverTunnel = await openTunnel(
      config(serverKey, clientKey, [SERVER_V4, "fd98::1"], [CLIENT_V4, "fd98::2"]),
      { name: "rps" },
    );
    const rpsTunnel = asRpTunnel(serverTunnel, [SERVER_V4, "fd98::1"]);
    const rps = RpsService.start({ tunnel: rpsTunnel, publicBind: "127.0.0.1", registry });
    started.push(() => rps.stop());

    const clientTunnel = await openTunnel(
      config(
        clientKey,
        serverKey,
        [CLIENT_V4, "fd98::2"],
        [SERVER_V4, "fd98::1"],
        serverTunnel.device.listenPort,
      ),
      { name: "rpc" },
    );
    const wanted = opts.publicPort ?? 8080;
    const publicPort = portFree(wanted) ? wanted : freePort();
    const localPort = helloServer.addr.port;
    const rpc = await RpcService.start({
      tunnel: asRpTunnel(clientTunnel, [CLIENT_V4, "fd98::2"]),
      routes: [parseRoute(`127.0.0.1:${localPort}-${publicPort}`)],
      serverApi: { host: SERVER_V4 },
      clientIp: CLIENT_V4,
      startTimeoutSec: 15,
      registry,
    });
    started.push(() => rpc.stop());

    let admin: AdminServer | undefined;
    if (opts.adminListen !== null) {
      const listen = opts.adminListen ?? (portFree(8081) ? "127.0.0.1:8081" : `127.0.0.1:${freePort()}`);
      admin = startAdminServer(listen, { registry, version: opts.version ?? "demo" });
      started.push(() => admin!.shutdown());
    }
    const publicUrl = `http://127.0.0.1:${publicPort}/`;
    const dashboardUrl = admin ? `http://${joinHostPort(admin.addr.hostname, admin.addr.port)}/` : undefined;
    const lines = [
      `rps  (server)  public key ${
        encodeKey(publicKey(serverKey))
      }  WireGuard udp 127.0.0.1:${serverTunnel.device.listenPort}`,
      `               API http://${SERVER_V4}/api/v1/port-mappings (inside the tunnel only)`,
      `rpc  (client)  public key ${encodeKey(publicKey(clientKey))}  tunnel address ${CLIENT_V4}`,
      `hello service  http://127.0.0.1:${localPort}/ (the client's local service)`,
      `mapping        public tcp ${publicPort} -> tunnel -> rpc -> 127.0.0.1:${localPort}`,
      ``,
      `try:           curl ${publicUrl}`,
      ...(dashboardUrl
        ? [
          `dashboard:     ${dashboardUrl}   (mappings with owner, connections, bytes)`,
          `operator API:  curl ${dashboardUrl}api/v1/port-mappings`,
        ]
        : []),
    ];
    return {
      publicUrl,
      localUrl: `http://127.0.0.1:${localPort}/`,
      dashboardUrl,
      rps,
      rpc,
      registry,
      lines,
      stop: stopAll,
    };
  } catch (e) {
    await stopAll();
    throw e;
  }
}
