/**
 * The pool in the admin surface: the "tunnels" status section (one entry per pooled tunnel, with its names,
 * reference count and holders beside the device's `wg show`-like status) and the wgedge_tunnel_* metrics.
 */
import type { ServiceRegistry } from "../registry.ts";
import type { TunnelPool } from "./pool.ts";

export function reportTunnels(pool: TunnelPool, registry: ServiceRegistry): () => void {
  const unregister: (() => void)[] = [];
  unregister.push(registry.registerStatus("tunnels", () =>
    pool.list().map((t) => {
      const st = t.tunnel.device.status();
      return {
        name: t.name,
        names: t.names,
        refs: t.refs,
        users: t.users,
        addresses: t.tunnel.config.iface.addresses.map((a) => `${a.address}/${a.prefix}`),
        publicKey: st.publicKey,
        listenPort: st.listenPort,
        peers: st.peers,
      };
    })));
  const m = registry.metrics;
  const labels = ["tunnel", "peer"];
  const refs = m.gauge("wgedge_tunnel_references", "Holders of a pooled tunnel (it closes at zero).", [
    "tunnel",
  ]);
  const handshakes = m.counter(
    "wgedge_tunnel_handshakes_total",
    "Completed WireGuard handshakes per peer.",
    labels,
  );
  const bytes = m.counter(
    "wgedge_tunnel_bytes_total",
    "WireGuard message bytes per peer, handshakes included (as wg show counts them).",
    [
      ...labels,
      "direction",
    ],
  );
  const last = m.gauge(
    "wgedge_tunnel_last_handshake_seconds",
    "Unix time of the peer's last handshake (absent before the first).",
    labels,
  );
  unregister.push(m.addCollector(() => {
    for (const x of [refs, handshakes, bytes, last]) x.reset();
    for (const t of pool.list()) {
      refs.set({ tunnel: t.name }, t.refs);
      for (const p of t.tunnel.device.status().peers) {
        const l = { tunnel: t.name, peer: p.publicKey };
        handshakes.set(l, p.handshakes);
        bytes.set({ ...l, direction: "rx" }, p.rxBytes);
        bytes.set({ ...l, direction: "tx" }, p.txBytes);
        if (p.lastHandshake) last.set(l, Date.parse(p.lastHandshake) / 1000);
      }
    }
  }));
  return () => {
    for (const u of unregister) u();
  };
}
