/**
 * SOCKS5 UDP ASSOCIATE (RFC 1928 §7): a UDP relay socket on the host for the client, a UDP socket inside the
 * tunnel for the targets, and the header `RSV FRAG ATYP DST.ADDR DST.PORT` on every datagram between client
 * and relay. The rules, each counted when it drops a datagram:
 * - only datagrams from the client are relayed: the control connection's address, and the port the request
 *   named (or, when it named port 0, the port of the client's first datagram);
 * - FRAG must be 0: fragmentation is optional in §7 and not implemented, so fragments are dropped;
 * - names are resolved by the tunnel's resolver (its `DNS =` servers inside the tunnel), once per association;
 * - only answers from an address the client sent to are relayed back (no unsolicited datagrams reach it);
 * - the association lives exactly as long as its TCP control connection.
 */
import type { ConnReader } from "../../net/http1.ts";
import { writeAll } from "../../net/pipe.ts";
import { isIpLiteral, osResolver, unbracket } from "../../net/resolve.ts";
import type { Conn, DatagramConn, NetAddr } from "../../net/types.ts";
import {
  encodeReply,
  encodeUdpDatagram,
  parseUdpDatagram,
  SOCKS_REP_GENERAL_FAILURE,
  SOCKS_REP_SUCCEEDED,
  type SocksRequest,
} from "../../wire/socks5.ts";
import { noteProxyError, type UdpDropReason } from "./report.ts";
import type { ProxySession } from "./server.ts";

/** Targets remembered per association (answers from others are dropped); the oldest go first past this. */
const MAX_PEERS = 4096;
/** Names resolved per association. */
const MAX_NAMES = 256;

export async function runUdpAssociation(
  conn: Conn,
  _reader: ConnReader,
  req: SocksRequest,
  s: ProxySession,
): Promise<void> {
  const stats = s.stats;
  const clientIp = unbracket(conn.remoteAddr.hostname);
  // DST.PORT is the port the client will send from; 0 means "not known yet" (learnt from its first datagram).
  let clientPort = req.port;
  let relay: DatagramConn, inner: DatagramConn;
  try {
    relay = s.host.listenUdp({ hostname: conn.localAddr.hostname, port: 0 });
  } catch (e) {
    noteProxyError(stats, `UDP relay socket: ${(e as Error).message}`, s.clock.wallMs());
    await writeAll(conn, encodeReply(SOCKS_REP_GENERAL_FAILURE, "0.0.0.0", 0));
    return;
  }
  try {
    inner = s.egress.listenUdp({ port: 0 });
  } catch (e) {
    relay.close();
    noteProxyError(stats, `UDP socket in ${s.egress.name}: ${(e as Error).message}`, s.clock.wallMs());
    await writeAll(conn, encodeReply(SOCKS_REP_GENERAL_FAILURE, "0.0.0.0", 0));
    return;
  }
  const drop = (reason: UdpDropReason) => stats.udpDropped[reason]++;
  const peers = new Set<string>();
  const names = new Map<string, string>();
  const resolver = s.egress.resolver ?? osResolver;
  const resolve = async (name: string): Promise<string> => {
    const known = names.get(name);
    if (known !== undefined) return known;
    const addr = (await resolver.resolve(name))[0];
    if (names.size >= MAX_NAMES) names.delete(names.keys().next().value!);
    names.set(name, addr);
    return addr;
  };

  const fromClient = async () => {
    for (;;) {
      const [data, from] = await relay.receive();
      if (unbracket(from.hostname) !== clientIp || (clientPort !== 0 && from.port !== clientPort)) {
        drop("foreign_source");
        continue;
      }
      const d = parseUdpDatagram(data);
      if (!d) {
        drop("malformed");
        continue;
      }
      if (d.frag !== 0) {
        drop("fragment");
        continue;
      }
      if (clientPort === 0) clientPort = from.port;
      let host = d.host;
      if (!isIpLiteral(host)) {
        try {
          host = await resolve(host);
        } catch (e) {
          noteProxyError(stats, (e as Error).message, s.clock.wallMs());
          drop("unresolved");
          continue;
        }
      }
      const to: NetAddr = { transport: "udp", hostname: host, port: d.port };
      try {
        await inner.send(d.data, to);
      } catch (e) {
        noteProxyError(stats, `UDP to ${host}:${d.port}: ${(e as Error).message}`, s.clock.wallMs());
        drop("send_failed");
        continue;
      }
      stats.lastSuccessMs = s.clock.wallMs();
      const key = `${host}|${d.port}`;
      if (!peers.has(key)) {
        if (peers.size >= MAX_PEERS) peers.delete(peers.values().next().value!);
        peers.add(key);
      }
      stats.udpDatagramsToTarget++;
      stats.udpBytesToTarget += d.data.length;
    }
  };

  const fromTargets = async () => {
    for (;;) {
      const [data, from] = await inner.receive();
      const host = unbracket(from.hostname);
      if (clientPort === 0 || !peers.has(`${host}|${from.port}`)) {
        drop("unsolicited");
        continue;
      }
      try {
        await relay.send(encodeUdpDatagram(host, from.port, data), {
          transport: "udp",
          hostname: clientIp,
          port: clientPort,
        });
      } catch {
        drop("send_failed");
        continue;
      }
      stats.udpDatagramsToClient++;
      stats.udpBytesToClient += data.length;
    }
  };

  // §7: the association ends when the TCP connection it arrived on ends (or the proxy stops).
  const control = async () => {
    const buf = new Uint8Array(256);
    while ((await conn.read(buf)) !== null) { /* nothing is expected after the request */ }
  };

  stats.udpAssociations++;
  try {
    // §6: BND.ADDR/BND.PORT is where the client sends its datagrams.
    await writeAll(conn, encodeReply(SOCKS_REP_SUCCEEDED, relay.addr.hostname, relay.addr.port));
    s.handshakeDone();
    s.log.debug("UDP association", {
      proxy: s.spec.id,
      client: `${clientIp}:${clientPort}`,
      relay: `${relay.addr.hostname}:${relay.addr.port}`,
    });
    // Each loop ends by an error once its socket closes: caught here, so none is left unhandled.
    await Promise.race([control(), fromClient(), fromTargets()].map((p) => p.catch(() => {})));
  } finally {
    stats.udpAssociations--;
    relay.close();
    inner.close();
  }
}
