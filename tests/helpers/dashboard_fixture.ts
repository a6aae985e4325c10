/**
 * A status with every section the dashboard knows (and one it does not), for the page test and the browser
 * test: four relays (one not running, one with an error), tunnels, rps/rpc, mwgp, NTRIP, a reload applied in
 * part. Times are relative to WALL.
 */

export const WALL = 1_700_000_000_000;
export const iso = (agoS: number): string => new Date(WALL - agoS * 1000).toISOString();

/** Four relays (one failing, one erroring), proxies, tunnels (one whose endpoint name does not resolve), rps/rpc, mwgp, NTRIP and a reload applied in part. */
export function fullStatus(): Record<string, () => unknown> {
  const relay = (id: string, extra: Record<string, unknown> = {}) => ({
    id,
    protocol: "tcp",
    listen: "0.0.0.0:50001",
    target: "127.0.0.1:9",
    via: "direct",
    state: "listening",
    health: "unknown",
    active: 1,
    total: 12,
    failed: 0,
    bytesToTarget: 5 * 1024 * 1024,
    bytesToClient: 3 * 1024,
    ...extra,
  });
  return {
    reload: () => ({
      lastResult: "partial",
      lastAt: iso(300),
      lastSuccessAt: iso(3600),
      errors: ["RELAY_9: listen 0.0.0.0:50009: address in use"],
      reloads: 2,
    }),
    relays: () => [
      relay("RELAY_1", { engine: "kernel" }),
      relay("RELAY_2", {
        engine: "deno",
        lastError: "connect 127.0.0.1:1: Connection refused (os error 111)",
        failed: 4,
      }),
      relay("RELAY_3", { protocol: "udp", packetsToTarget: 10, packetsToClient: 9, packetsDropped: 0 }),
      relay("RELAY_4", { state: "error", lastError: "listen 0.0.0.0:50004: address in use" }),
    ],
    proxies: () => [
      {
        id: "PROXY_1",
        protocol: "socks5",
        listen: "127.0.0.1:1080",
        via: "wg:office",
        userRequired: true,
        user: "alice",
        maxConnections: 256,
        state: "listening",
        open: 2,
        total: 40,
        refused: 0,
        loginFailures: 2,
        badRequests: 0,
        handshakeTimeouts: 0,
        dialFailures: 1,
        bytesToTarget: 1024,
        bytesToClient: 2 * 1024 * 1024,
        udpBytesToTarget: 512,
        udpBytesToClient: 0,
        udpDropped: { fragment: 0, foreign_source: 1 },
        lastError: "dial 10.9.9.9:443: connection timed out",
      },
      {
        id: "PROXY_2",
        protocol: "http",
        listen: "127.0.0.1:3128",
        via: "wg:main",
        state: "listening",
        open: 0,
      },
    ],
    tunnels: () => [
      { name: "main", peers: [{ publicKey: "k", rxBytes: 1, txBytes: 2, lastHandshake: iso(5) }] },
      {
        name: "office",
        peers: [{
          publicKey: "o",
          endpoint: null,
          resolution: {
            name: "vpn.example.net",
            error: "no address for vpn.example.net",
            failures: 3,
            lastResolved: null,
            nextAttempt: iso(-40),
          },
          rxBytes: 0,
          txBytes: 0,
          lastHandshake: null,
        }],
      },
    ],
    rp_server: () => ({
      startup_time: WALL / 1000 - 7200,
      allow_ports: "1024-65535",
      client_expiry_ms: 60_000,
      api: ["10.0.0.1:80"],
      clients: [{ client_ip: "10.0.0.2", last_seen_ms_ago: 4200, mappings: 1 }],
    }),
    port_mappings: () => [{
      remote_port: 8080,
      protocol: "tcp",
      client_ip: "10.0.0.2",
      client_port: 18080,
      local_addr: "127.0.0.1:80",
      created_at: iso(3 * 3600 + 12 * 60),
      connections_total: 3,
      connections_active: 1,
      bytes_in: 2048,
      bytes_out: 3 * 1024 ** 3,
      dial_failures: 0,
    }],
    rp_client: () => ({ server_api: "10.0.0.1:80", server_reachable: true }),
    rp_routes: () => [{
      route: "tcp:80:127.0.0.1:8080",
      protocol: "tcp",
      remote_port: 80,
      state: "refused",
      error: "port 80 is not allowed",
      bytes_in: 0,
      bytes_out: 0,
    }],
    mwgp_server: () => ({
      mode: "server",
      listen: "0.0.0.0:51821",
      stats: { bytesToServer: 2048, drops: {} },
    }),
    ntrip_stations: () => [{ id: "ST1", state: "RUNNING", source: {}, destination: {} }],
    ntrip_caster: () => ({ listen: "0.0.0.0:2101", mounts: [], rejected: {} }),
    something_new: () => ({ someCounter: 3, bytesSeen: 4096 }),
  };
}
