/**
 * The mwgp forwarding engine shared by the server and the client: index translation, MAC recomputation, the
 * cookie path, source validation, obfuscation per leg, expiry and counters. It owns no sockets: datagrams
 * go in with their source, and what to send comes out, so tests drive it without the network.
 *
 * Legs: "client" faces WireGuard initiators (remote clients for the server, the local WireGuard client for the
 * client); "server" faces responders (the WireGuard servers, or the remote mwgp server).
 */
import { xaeadOpen, xaeadSeal } from "../../crypto/aead.ts";
import { MAC_LEN } from "../../crypto/blake2s.ts";
import { COOKIE_REFRESH_TIME_MS, cookieKey, mac1Key, writeMac1, writeMac2 } from "../../wireguard/cookie.ts";
import { deobfuscate, type ObfsKey, obfuscate } from "../../wireguard/obfs.ts";
import { SourceValidation } from "../../config/mwgp.ts";
import type { Clock } from "../../util/clock.ts";
import { cryptoRandom, type RandomFill } from "../../util/random.ts";
import {
  COOKIE_NONCE_SIZE,
  CookieReplyMessage,
  InitiationMessage,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  messageType,
  receiverIndex,
  ResponseMessage,
  setReceiverIndex,
} from "../../wire/wireguard.ts";
import { addrKey, ForwardingEntry, ForwardingTable, sameAddr, type UdpAddr } from "./table.ts";
import { logger } from "../../util/log.ts";

const log = logger("mwgp");

export type Leg = "client" | "server";

export interface Outbound {
  leg: Leg;
  to: UdpAddr;
  data: Uint8Array;
}

const NO_ADDR: UdpAddr = Object.freeze({ hostname: "", port: 0 });

/** Where an initiation goes, decided by the router (server: decrypt the static key; client: fixed). */
export interface Route {
  server: UdpAddr;
  serverPublicKey: Uint8Array;
  clientPublicKey: Uint8Array;
  label: string;
  /** The matched peer's source validation (server mode); Default or absent = the forwarder's own. */
  csvl?: SourceValidation;
  ssvl?: SourceValidation;
}

export type DropReason =
  | "malformed"
  | "oversize"
  | "deobfuscate"
  | "mac1"
  | "decrypt"
  | "unknown_peer"
  | "resolve"
  | "unknown_index"
  | "source_mismatch"
  | "table_full"
  | "index_exhausted"
  | "cookie"
  | "unexpected_type";

export type Router = (
  init: InitiationMessage,
  from: UdpAddr,
) => Route | DropReason | Promise<Route | DropReason>;

export interface ForwarderOptions {
  router: Router;
  clock: Clock;
  random?: RandomFill;
  timeoutMs: number;
  /** Handshakes that never got a response are dropped sooner than idle sessions. */
  pendingTimeoutMs?: number;
  maxEntries: number;
  maxPacketSize: number;
  csvl: SourceValidation;
  ssvl: SourceValidation;
  /** Server mode: clients may be obfuscated (decoded when they are, answered in kind). */
  clientLegObfs?: ObfsKey;
  /** Client mode: everything to and from the server leg is obfuscated. */
  serverLegObfs?: ObfsKey;
  /** Called when the set of completed entries changed (cache saving). */
  onTableChanged?: () => void;
}

export interface ForwarderStats {
  packetsToServer: number;
  bytesToServer: number;
  packetsToClient: number;
  bytesToClient: number;
  handshakesForwarded: number;
  responsesForwarded: number;
  cookieRepliesForwarded: number;
  /** X25519 operations spent identifying initiations (the flood guard keeps this at one per real handshake). */
  dhOperations: number;
  roamed: number;
  drops: Record<DropReason, number>;
}

export const DEFAULT_PENDING_TIMEOUT_MS = 15_000;

function newStats(): ForwarderStats {
  return {
    packetsToServer: 0,
    bytesToServer: 0,
    packetsToClient: 0,
    bytesToClient: 0,
    handshakesForwarded: 0,
    responsesForwarded: 0,
    cookieRepliesForwarded: 0,
    dhOperations: 0,
    roamed: 0,
    drops: {
      malformed: 0,
      oversize: 0,
      deobfuscate: 0,
      mac1: 0,
      decrypt: 0,
      unknown_peer: 0,
      resolve: 0,
      unknown_index: 0,
      source_mismatch: 0,
      table_full: 0,
      index_exhausted: 0,
      cookie: 0,
      unexpected_type: 0,
    },
  };
}

interface HeldCookie {
  cookie: Uint8Array;
  at: number;
}

/**
 * The level a leg applies for a stored value. Default (0) means what mwgp means by it: none on the client leg
 * (roaming), IP and port on the server leg (wgit.go: `SourceValidateLevelDefault` falls through to IP and
 * port for server transports). Entries keep the raw value, as a cache file written by mwgp holds `ssvl: 0`.
 */
export function clientLegLevel(level: SourceValidation): SourceValidation {
  return level === SourceValidation.Default ? SourceValidation.None : level;
}
export function serverLegLevel(level: SourceValidation): SourceValidation {
  return level === SourceValidation.Default ? SourceValidation.IpAndPort : level;
}

/** Source validation: true when `from` is acceptable for an entry endpoint `expected` at `level`. */
function sourceOk(level: SourceValidation, expected: UdpAddr, from: UdpAddr): boolean {
  switch (level) {
    case SourceValidation.Ip:
      return expected.hostname === from.hostname;
    case SourceValidation.IpAndPort:
      return sameAddr(expected, from);
    default:
      return true;
  }
}

export class Forwarder {
  readonly table: ForwardingTable;
  readonly stats = newStats();
  readonly #random: RandomFill;
  readonly #pendingMs: number;
  /** Cookies a responder gave us (bound to our source address), by responder address. */
  readonly #serverCookies = new Map<string, HeldCookie>();
  /** Cookies an initiator gave us in reply to a response, by initiator address. */
  readonly #clientCookies = new Map<string, HeldCookie>();
  /** The configured levels, as configured (Default included; the legs interpret it when checking). */
  readonly csvl: SourceValidation;
  readonly ssvl: SourceValidation;
  /** forward()'s one result object, rewritten per datagram (the hot path allocates nothing). */
  readonly #out: Outbound = { leg: "server", to: NO_ADDR, data: new Uint8Array(0) };

  constructor(readonly opts: ForwarderOptions) {
    this.#random = opts.random ?? cryptoRandom;
    this.table = new ForwardingTable(opts.maxEntries, this.#random);
    this.#pendingMs = Math.min(opts.pendingTimeoutMs ?? DEFAULT_PENDING_TIMEOUT_MS, opts.timeoutMs);
    this.csvl = opts.csvl;
    this.ssvl = opts.ssvl;
  }

  #drop(reason: DropReason): null {
    this.stats.drops[reason]++;
    return null;
  }

  #toServer(e: ForwardingEntry | null, to: UdpAddr, msg: Uint8Array, now: number): Outbound {
    const data = this.opts.serverLegObfs ? obfuscate(msg, this.opts.serverLegObfs, this.#random) : msg;
    this.stats.packetsToServer++;
    this.stats.bytesToServer += data.length;
    if (e) e.lastActive = now;
    const out = this.#out;
    out.leg = "server";
    out.to = to;
    out.data = data;
    return out;
  }

  #toClient(e: ForwardingEntry, msg: Uint8Array, now: number): Outbound {
    const data = e.obfuscated && this.opts.clientLegObfs
      ? obfuscate(msg, this.opts.clientLegObfs, this.#random)
      : msg;
    this.stats.packetsToClient++;
    this.stats.bytesToClient += data.length;
    e.lastActive = now;
    const out = this.#out;
    out.leg = "client";
    out.to = e.client;
    out.data = data;
    return out;
  }

  /**
   * A datagram from `leg`, for a forwarding loop: a synchronous result is the forwarder's one reused Outbound
   * (valid until the next call: send it at once) and its data may be `datagram` itself, rewritten in place. An
   * initiation resolves later to an Outbound of its own (it was copied, so the caller may reuse `datagram`).
   * `now` (the injected clock's time) is what the entry's idle time counts from: a loop reads the clock once
   * per received batch and passes it for every datagram of the batch, not one clock read per datagram; an
   * initiation reads the clock itself once routed.
   */
  forward(
    leg: Leg,
    datagram: Uint8Array,
    from: UdpAddr,
    now: number = this.opts.clock.now(),
  ): Outbound | null | Promise<Outbound | null> {
    return leg === "client" ? this.#fromClient(datagram, from, now) : this.#fromServer(datagram, from, now);
  }

  /** A datagram from the client leg (a result of its own). May return a promise (a route lookup). */
  fromClient(datagram: Uint8Array, from: UdpAddr): Outbound | null | Promise<Outbound | null> {
    const r = this.#fromClient(datagram, from, this.opts.clock.now());
    return r === null || r instanceof Promise ? r : { ...r };
  }

  /** A datagram from the server leg (a result of its own). */
  fromServer(datagram: Uint8Array, from: UdpAddr): Outbound | null {
    const r = this.#fromServer(datagram, from, this.opts.clock.now());
    return r && { ...r };
  }

  #fromClient(datagram: Uint8Array, from: UdpAddr, now: number): Outbound | null | Promise<Outbound | null> {
    if (datagram.length > this.opts.maxPacketSize) return this.#drop("oversize");
    let msg = datagram, obfuscated = false;
    if (this.opts.clientLegObfs) {
      const d = deobfuscate(datagram, this.opts.clientLegObfs);
      if (!d) return this.#drop("deobfuscate");
      msg = d.message;
      obfuscated = d.obfuscated;
    }
    switch (messageType(msg)) {
      case MESSAGE_INITIATION:
        // Copied: routing may await (DNS), and the caller reuses its receive buffer meanwhile.
        return this.#initiation(new InitiationMessage(msg.slice()), from, obfuscated);
      case MESSAGE_TRANSPORT:
        return this.#transportFromClient(msg, from, obfuscated, now);
      case MESSAGE_COOKIE_REPLY:
        return this.#cookieFromClient(new CookieReplyMessage(msg), from, now);
      case MESSAGE_RESPONSE:
        // A client answering a server-initiated handshake: not forwarded (as the original; documented).
        return this.#drop("unexpected_type");
      default:
        return this.#drop("malformed");
    }
  }

  #fromServer(datagram: Uint8Array, from: UdpAddr, now: number): Outbound | null {
    if (datagram.length > this.opts.maxPacketSize) return this.#drop("oversize");
    let msg = datagram;
    if (this.opts.serverLegObfs) {
      const d = deobfuscate(datagram, this.opts.serverLegObfs);
      if (!d) return this.#drop("deobfuscate");
      msg = d.message;
    }
    switch (messageType(msg)) {
      case MESSAGE_RESPONSE:
        return this.#response(new ResponseMessage(msg), from, now);
      case MESSAGE_TRANSPORT:
        return this.#transportFromServer(msg, from, now);
      case MESSAGE_COOKIE_REPLY:
        return this.#cookieFromServer(new CookieReplyMessage(msg), from, now);
      case MESSAGE_INITIATION:
        // Server-initiated handshakes cannot be routed: the client's index for them is unknown.
        return this.#drop("unexpected_type");
      default:
        return this.#drop("malformed");
    }
  }

  async #initiation(init: InitiationMessage, from: UdpAddr, obfuscated: boolean): Promise<Outbound | null> {
    const route = await this.opts.router(init, from);
    if (typeof route === "string") return this.#drop(route);
    const now = this.opts.clock.now();
    const clientOrigin = init.sender;
    let e = this.table.findDuplicate(clientOrigin, from, route.clientPublicKey);
    if (e && !sameAddr(e.server, route.server)) {
      this.table.remove(e);
      e = undefined;
    }
    if (!e) {
      if (!this.table.makeRoom()) {
        this.table.expire(now, this.opts.timeoutMs, this.#pendingMs);
        if (!this.table.makeRoom()) return this.#drop("table_full");
      }
      const cp = this.table.allocate(this.table.byClientProxy, clientOrigin);
      if (cp === 0) return this.#drop("index_exhausted");
      e = new ForwardingEntry(
        clientOrigin,
        cp,
        from,
        route.server,
        route.clientPublicKey,
        route.serverPublicKey,
        now,
        route.csvl || this.csvl,
        route.ssvl || this.ssvl,
      );
      e.serverLabel = route.label;
      this.table.insert(e);
      log.debug("initiation routed", {
        client: addrKey(from),
        server: addrKey(route.server),
        via: route.label,
        index: clientOrigin,
        proxyIndex: cp,
        obfuscated,
      });
    }
    e.obfuscated = obfuscated;
    e.initMac1FromClient = init.mac1.slice();
    if (e.clientProxy !== clientOrigin) {
      init.sender = e.clientProxy;
      writeMac1(init.bytes, mac1Key(route.serverPublicKey));
      const held = this.#serverCookies.get(addrKey(route.server));
      writeMac2(init.bytes, held && now - held.at < COOKIE_REFRESH_TIME_MS ? held.cookie : undefined);
    }
    e.initMac1ToServer = init.mac1.slice();
    this.stats.handshakesForwarded++;
    return { ...this.#toServer(e, e.server, init.bytes, now) }; // resolved later: not the shared #out
  }

  #response(resp: ResponseMessage, from: UdpAddr, now: number): Outbound | null {
    const e = this.table.byClientProxy.get(resp.receiver);
    if (!e) return this.#drop("unknown_index");
    if (!sourceOk(serverLegLevel(e.ssvl), e.server, from)) return this.#drop("source_mismatch");
    const hadServerProxy = e.serverProxy;
    if (!this.table.completeWithServer(e, resp.sender)) return this.#drop("index_exhausted");
    e.respMac1FromServer = resp.mac1.slice();
    if (e.serverProxy !== e.serverOrigin || e.clientProxy !== e.clientOrigin) {
      resp.sender = e.serverProxy;
      resp.receiver = e.clientOrigin;
      if (!e.clientPublicKey) return this.#drop("mac1");
      writeMac1(resp.bytes, mac1Key(e.clientPublicKey));
      const held = this.#clientCookies.get(addrKey(e.client));
      writeMac2(resp.bytes, held && now - held.at < COOKIE_REFRESH_TIME_MS ? held.cookie : undefined);
    }
    e.respMac1ToClient = resp.mac1.slice();
    this.stats.responsesForwarded++;
    if (hadServerProxy !== e.serverProxy) {
      log.debug("handshake completed", {
        client: addrKey(e.client),
        server: addrKey(e.server),
        proxyIndex: e.serverProxy,
      });
      this.opts.onTableChanged?.();
    }
    return this.#toClient(e, resp.bytes, now);
  }

  /**
   * Cookie reply from a responder to an initiation we forwarded. We always learn the cookie (it is bound to
   * our address, so it serves every later initiation we send that server); when we rewrote the initiation
   * the client cannot decrypt the reply (it was bound to our mac1), so it is re-encrypted for the client's.
   */
  #cookieFromServer(reply: CookieReplyMessage, from: UdpAddr, now: number): Outbound | null {
    const e = this.table.byClientProxy.get(reply.receiver);
    if (!e) return this.#drop("unknown_index");
    if (!sourceOk(serverLegLevel(e.ssvl), e.server, from)) return this.#drop("source_mismatch");
    if (!e.initMac1ToServer || !e.initMac1FromClient || !e.serverPublicKey) return this.#drop("cookie");
    const key = cookieKey(e.serverPublicKey);
    const cookie = xaeadOpen(key, reply.nonce, reply.encryptedCookie, e.initMac1ToServer);
    if (!cookie || cookie.length !== MAC_LEN) return this.#drop("cookie");
    this.#serverCookies.set(addrKey(e.server), { cookie, at: now });
    reply.receiver = e.clientOrigin;
    if (e.clientProxy !== e.clientOrigin) {
      const nonce = this.#random(new Uint8Array(COOKIE_NONCE_SIZE));
      reply.nonce.set(nonce);
      reply.encryptedCookie.set(xaeadSeal(key, nonce, cookie, e.initMac1FromClient));
    }
    this.stats.cookieRepliesForwarded++;
    return this.#toClient(e, reply.bytes, now);
  }

  /** The mirror case: an initiator under load answers our (possibly rewritten) response with a cookie reply. */
  #cookieFromClient(reply: CookieReplyMessage, from: UdpAddr, now: number): Outbound | null {
    const e = this.table.byServerProxy.get(reply.receiver);
    if (!e) return this.#drop("unknown_index");
    const level = clientLegLevel(e.csvl);
    if (!sourceOk(level === SourceValidation.None ? SourceValidation.Ip : level, e.client, from)) {
      return this.#drop("source_mismatch");
    }
    if (!e.respMac1ToClient || !e.respMac1FromServer || !e.clientPublicKey) return this.#drop("cookie");
    const key = cookieKey(e.clientPublicKey);
    const cookie = xaeadOpen(key, reply.nonce, reply.encryptedCookie, e.respMac1ToClient);
    if (!cookie || cookie.length !== MAC_LEN) return this.#drop("cookie");
    this.#clientCookies.set(addrKey(e.client), { cookie, at: now });
    reply.receiver = e.serverOrigin;
    if (e.serverProxy !== e.serverOrigin || e.clientProxy !== e.clientOrigin) {
      const nonce = this.#random(new Uint8Array(COOKIE_NONCE_SIZE));
      reply.nonce.set(nonce);
      reply.encryptedCookie.set(xaeadSeal(key, nonce, cookie, e.respMac1FromServer));
    }
    this.stats.cookieRepliesForwarded++;
    return this.#toServer(e, e.server, reply.bytes, now);
  }

  /** The hot path: a table lookup, the receiver index rewritten in place, no allocation. */
  #transportFromClient(msg: Uint8Array, from: UdpAddr, obfuscated: boolean, now: number): Outbound | null {
    const e = this.table.byServerProxy.get(receiverIndex(msg));
    if (!e) return this.#drop("unknown_index");
    if (!sameAddr(e.client, from)) {
      if (!sourceOk(clientLegLevel(e.csvl), e.client, from)) return this.#drop("source_mismatch");
      // Accepted from elsewhere: the client roamed; answer it there.
      e.client = { hostname: from.hostname, port: from.port };
      e.obfuscated = obfuscated;
      this.stats.roamed++;
      this.opts.onTableChanged?.();
    }
    setReceiverIndex(msg, e.serverOrigin);
    return this.#toServer(e, e.server, msg, now);
  }

  #transportFromServer(msg: Uint8Array, from: UdpAddr, now: number): Outbound | null {
    const e = this.table.byClientProxy.get(receiverIndex(msg));
    if (!e) return this.#drop("unknown_index");
    if (!sourceOk(serverLegLevel(e.ssvl), e.server, from)) return this.#drop("source_mismatch");
    setReceiverIndex(msg, e.clientOrigin);
    return this.#toClient(e, msg, now);
  }

  /** Expires idle entries; returns true when completed entries went away (the cache should be rewritten). */
  expire(): boolean {
    const now = this.opts.clock.now();
    const r = this.table.expire(now, this.opts.timeoutMs, this.#pendingMs);
    for (const m of [this.#serverCookies, this.#clientCookies]) {
      for (const [k, c] of m) if (now - c.at >= COOKIE_REFRESH_TIME_MS) m.delete(k);
    }
    return r.completedRemoved;
  }

  /** Points every entry at a new responder address (client mode, after the server name re-resolved). */
  repointServer(oldAddr: UdpAddr | null, to: UdpAddr): number {
    let n = 0;
    for (const e of this.table.entries()) {
      if (oldAddr === null || sameAddr(e.server, oldAddr)) {
        e.server = to;
        n++;
      }
    }
    return n;
  }
}
