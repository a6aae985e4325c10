/**
 * The SOCKS5 server side of one client connection, in RFC 1928's order: method negotiation (§3), RFC 1929
 * username/password when the proxy has credentials, the request (§4), the reply (§6), then CONNECT's byte
 * stream or UDP ASSOCIATE's relay (§7, socks5_udp.ts). Every malformed or unsupported message is answered
 * with the protocol's error (METHOD 0xFF, auth STATUS 1, REP 0x01/0x07/0x08) and counted; BIND is not offered.
 */
import { ConnReader } from "../../net/http1.ts";
import { writeAll } from "../../net/pipe.ts";
import type { Conn } from "../../net/types.ts";
import {
  encodeMethodSelection,
  encodeReply,
  encodeUserPassReply,
  greetingNeeded,
  parseGreeting,
  parseRequest,
  parseUserPass,
  requestNeeded,
  SOCKS_ATYP_DOMAIN,
  SOCKS_ATYP_IPV4,
  SOCKS_ATYP_IPV6,
  SOCKS_CMD_CONNECT,
  SOCKS_CMD_UDP_ASSOCIATE,
  SOCKS_METHOD_NO_ACCEPTABLE,
  SOCKS_METHOD_NO_AUTH,
  SOCKS_METHOD_USERPASS,
  SOCKS_REP_ADDRESS_TYPE_NOT_SUPPORTED,
  SOCKS_REP_COMMAND_NOT_SUPPORTED,
  SOCKS_REP_CONNECTION_REFUSED,
  SOCKS_REP_GENERAL_FAILURE,
  SOCKS_REP_HOST_UNREACHABLE,
  SOCKS_REP_NETWORK_UNREACHABLE,
  SOCKS_REP_SUCCEEDED,
  SOCKS_USERPASS_FAILURE,
  SOCKS_USERPASS_SUCCESS,
  SOCKS_USERPASS_VERSION,
  SOCKS_VERSION,
  userPassNeeded,
} from "../../wire/socks5.ts";
import { DialFailure, type DialFailureKind, dialTarget } from "./dial.ts";
import { noteProxyError } from "./report.ts";
import type { ProxySession } from "./server.ts";
import { runUdpAssociation } from "./socks5_udp.ts";

/** Reads one message whose length `needed` learns from the bytes seen so far (each format bounds it). */
export async function readMessage(
  reader: ConnReader,
  needed: (buf: Uint8Array) => number,
): Promise<Uint8Array> {
  let buf = new Uint8Array(0);
  for (let n = needed(buf); n > buf.length; n = needed(buf)) {
    const more = await reader.readExact(n - buf.length);
    const next = new Uint8Array(n);
    next.set(buf);
    next.set(more, buf.length);
    buf = next;
  }
  return buf;
}

const REP_FOR: Record<DialFailureKind, number> = {
  resolve: SOCKS_REP_HOST_UNREACHABLE,
  refused: SOCKS_REP_CONNECTION_REFUSED,
  unreachable: SOCKS_REP_NETWORK_UNREACHABLE,
  timeout: SOCKS_REP_HOST_UNREACHABLE,
  other: SOCKS_REP_GENERAL_FAILURE,
};

/** A reply carrying no bound address (0.0.0.0:0), for failures. */
function failure(rep: number): Uint8Array {
  return encodeReply(rep, "0.0.0.0", 0);
}

export async function serveSocks5(conn: Conn, s: ProxySession): Promise<void> {
  const reader = new ConnReader(conn, 1024);
  const bad = async (rep?: number) => {
    s.stats.badRequests++;
    if (rep !== undefined) await writeAll(conn, failure(rep)).catch(() => {});
  };

  // §3: VER NMETHODS METHODS. A client that does not speak version 5 gets no SOCKS5 answer, only a close.
  const greeting = parseGreeting(await readMessage(reader, greetingNeeded));
  if (!greeting || greeting.version !== SOCKS_VERSION) return await bad();
  const method = s.credentials ? SOCKS_METHOD_USERPASS : SOCKS_METHOD_NO_AUTH;
  if (!greeting.methods.includes(method)) {
    if (s.credentials) s.stats.loginFailures++;
    else s.stats.badRequests++;
    await writeAll(conn, encodeMethodSelection(SOCKS_METHOD_NO_ACCEPTABLE));
    return;
  }
  await writeAll(conn, encodeMethodSelection(method));

  // RFC 1929: VER ULEN UNAME PLEN PASSWD -> VER STATUS; a failure closes the connection.
  if (s.credentials) {
    const up = parseUserPass(await readMessage(reader, userPassNeeded));
    if (!up || up.version !== SOCKS_USERPASS_VERSION) {
      s.stats.badRequests++;
      await writeAll(conn, encodeUserPassReply(SOCKS_USERPASS_FAILURE));
      return;
    }
    if (!s.credentials.check(up.user, up.password)) {
      s.stats.loginFailures++;
      s.log.info("SOCKS5 authentication failed", { proxy: s.spec.id, from: conn.remoteAddr.hostname });
      await writeAll(conn, encodeUserPassReply(SOCKS_USERPASS_FAILURE));
      return;
    }
    await writeAll(conn, encodeUserPassReply(SOCKS_USERPASS_SUCCESS));
  }

  // §4: VER CMD RSV ATYP DST.ADDR DST.PORT.
  const raw = await readMessage(reader, requestNeeded);
  if (raw[0] !== SOCKS_VERSION) return await bad(SOCKS_REP_GENERAL_FAILURE);
  if (![SOCKS_ATYP_IPV4, SOCKS_ATYP_DOMAIN, SOCKS_ATYP_IPV6].includes(raw[3])) {
    return await bad(SOCKS_REP_ADDRESS_TYPE_NOT_SUPPORTED);
  }
  const req = parseRequest(raw);
  if (!req) return await bad(SOCKS_REP_GENERAL_FAILURE); // an empty or non-UTF-8 domain
  if (req.code === SOCKS_CMD_UDP_ASSOCIATE && s.spec.udp) {
    return await runUdpAssociation(conn, reader, req, s);
  }
  if (req.code !== SOCKS_CMD_CONNECT) return await bad(SOCKS_REP_COMMAND_NOT_SUPPORTED);

  let target: Conn;
  try {
    target = await dialTarget(s.egress, req.host, req.port, s.signal);
  } catch (e) {
    s.stats.dialFailures++;
    const f = e instanceof DialFailure ? e : new DialFailure("other", String(e));
    noteProxyError(s.stats, f.message, s.clock.wallMs());
    s.log.debug("SOCKS5 CONNECT failed", {
      proxy: s.spec.id,
      to: `${req.host}:${req.port}`,
      error: f.message,
    });
    await writeAll(conn, failure(REP_FOR[f.kind])).catch(() => {});
    return;
  }
  s.stats.lastSuccessMs = s.clock.wallMs();
  try {
    // §6: BND.ADDR/BND.PORT is the address wgedge's side of the tunnel connection has.
    await writeAll(conn, encodeReply(SOCKS_REP_SUCCEEDED, target.localAddr.hostname, target.localAddr.port));
    await s.splice(conn, reader, target);
  } finally {
    target.close();
  }
}
