/**
 * A userspace WireGuard device (wireguard-go device.go + receive.go): owns the UDP bind, the static identity,
 * the peers, the index table and cryptokey routing. Above it sits anything that speaks IP packets through
 * PacketInterface (the netstack). Every datagram is counted: received = accepted + dropped-by-reason.
 */
import { lookup } from "node:dns/promises";
import { aead, counterNonce } from "../crypto/aead.ts";
import { encodeKey } from "../crypto/x25519.ts";
import { equalBytes } from "../util/bytes.ts";
import { type Clock, taskClock } from "../util/clock.ts";
import { type Logger, logger } from "../util/log.ts";
import { cryptoRandom, type RandomFill, randomU32 } from "../util/random.ts";
import { formatIpv4, parseIpv4 } from "../wire/ipv4.ts";
import { formatIpv6, parseIpv6 } from "../wire/ipv6.ts";
import {
  CookieReplyMessage,
  InitiationMessage,
  MESSAGE_COOKIE_REPLY,
  MESSAGE_INITIATION,
  MESSAGE_RESPONSE,
  MESSAGE_TRANSPORT,
  messageTypeAnyReserved,
  reservedIsZero,
  ResponseMessage,
  TRANSPORT_HEADER_SIZE,
  withZeroReserved,
  writeReserved,
} from "../wire/wireguard.ts";
import { AllowedIps } from "./allowedips.ts";
import { type Bind, type BindEndpoint, endpointKey } from "./bind.ts";
import { joinHostPort } from "../util/host_port.ts";
import { defaultBind } from "./bind_linux.ts";
import type { Endpoint, WgPeerConfig } from "./config.ts";
import {
  DEFAULT_MTU,
  HANDSHAKE_BURST_PER_SOURCE,
  HANDSHAKE_INITIATION_RATE_MS,
  HANDSHAKES_PER_SECOND_PER_SOURCE,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME_MS,
  UNDER_LOAD_AFTER_TIME_MS,
  UNDER_LOAD_HANDSHAKES_PER_SECOND,
} from "./constants.ts";
import { CookieChecker } from "./cookie.ts";
import { Keypair } from "./keypair.ts";
import {
  consumeInitiation,
  consumeResponse,
  deriveSessionKeys,
  HandshakeState,
  type StaticIdentity,
  staticIdentity,
} from "./noise.ts";
import { Peer, type PeerHost } from "./peer.ts";
import type { PacketTransform } from "./obfs.ts";

export type { PacketTransform };

export type Resolver = (host: string) => Promise<string[]>;

/** First retry after a peer's endpoint name failed to resolve; doubles per failure up to the re-resolve interval. */
export const RESOLVE_RETRY_FIRST_MS = 5_000;

export interface DeviceOptions {
  privateKey: Uint8Array;
  listenPort?: number;
  mtu?: number;
  peers?: WgPeerConfig[];
  clock?: Clock;
  random?: RandomFill;
  bind?: Bind;
  transform?: PacketTransform;
  resolve?: Resolver;
  /** Name for logs and status (e.g. the tunnel name). */
  name?: string;
  /** Handshake messages per second above which cookies are demanded (default as wireguard-go). */
  underLoadThreshold?: number;
  /**
   * How often hostname endpoints are resolved again (ms, default 5 min; 0 = never). A name that failed is
   * retried sooner: RESOLVE_RETRY_FIRST_MS after the first failure, doubling up to this interval.
   */
  reresolveIntervalMs?: number;
}

export type DropReason =
  | "malformed"
  | "transform"
  | "mac1"
  | "cookieRequired"
  | "rateLimited"
  | "handshakeRejected"
  | "unknownIndex"
  | "cookieReply"
  | "replay"
  | "decrypt"
  | "expiredKey"
  | "innerMalformed"
  | "allowedIps";

export interface DeviceStats {
  rxDatagrams: number;
  rxAccepted: number;
  dropped: Record<DropReason, number>;
  txDatagrams: number;
  /** Outbound IP packets with no peer for their destination. */
  txNoRoute: number;
  cookieRepliesSent: number;
}

interface IndexEntry {
  peer: Peer;
  keypair?: Keypair;
}

export interface PeerStatus {
  publicKey: string;
  endpoint: string | null;
  /** For a hostname endpoint: the name, whether it resolves, and when it is resolved again. */
  resolution?: {
    name: string;
    error: string | null;
    failures: number;
    lastResolved: string | null;
    nextAttempt: string | null;
  };
  allowedIps: string[];
  persistentKeepalive: number;
  /** Whether a preshared key is mixed into the handshake (named so status redaction keeps it visible). */
  keying: "preshared" | "public-key-only";
  lastHandshake: string | null;
  rxBytes: number;
  txBytes: number;
  handshakes: number;
}

export class Device implements PeerHost {
  readonly clock: Clock;
  readonly random: RandomFill;
  readonly log: Logger;
  readonly mtu: number;
  /** Changes only through setPrivateKey() (UAPI), which re-derives everything that depends on it. */
  #identity: StaticIdentity;
  #publicKey: string;
  readonly peers: Peer[] = [];
  readonly stats: DeviceStats = {
    rxDatagrams: 0,
    rxAccepted: 0,
    dropped: {
      malformed: 0,
      transform: 0,
      mac1: 0,
      cookieRequired: 0,
      rateLimited: 0,
      handshakeRejected: 0,
      unknownIndex: 0,
      cookieReply: 0,
      replay: 0,
      decrypt: 0,
      expiredKey: 0,
      innerMalformed: 0,
      allowedIps: 0,
    },
    txDatagrams: 0,
    txNoRoute: 0,
    cookieRepliesSent: 0,
  };
  listenPort = 0;
  #bind: Bind;
  /** Transport messages are sealed here when the bind copies them (PeerHost.sealScratch). */
  #sealScratch = new Uint8Array(0);
  /** A bind given in the options is reopened on a listen-port change; the default one is replaced. */
  readonly #injectedBind: boolean;
  #started = false;
  /** The port asked for (options, then UAPI `listen_port=`); 0 or undefined = any. */
  #wantedPort: number | undefined;
  readonly #transform: PacketTransform | undefined;
  readonly #resolve: Resolver;
  #cookieChecker: CookieChecker;
  readonly #indices = new Map<number, IndexEntry>();
  readonly #routes = new AllowedIps<Peer>();
  readonly #peerByKey = new Map<string, Peer>();
  #receiver: (packet: Uint8Array) => void = () => {};
  #handshakeWindowStart = 0;
  #handshakesInWindow = 0;
  #underLoadUntil = -Infinity;
  readonly #underLoadThreshold: number;
  readonly #sourceBuckets = new Map<string, { tokens: number; at: number }>();
  readonly #nonce = new Uint8Array(12);
  readonly #reresolveMs: number;
  #reresolveTimer: ReturnType<Clock["setTimer"]> | undefined;
  #closed = false;
  readonly #logLimiter = new Map<string, { at: number; suppressed: number }>();

  constructor(private readonly opts: DeviceOptions) {
    this.clock = opts.clock ?? taskClock;
    this.random = opts.random ?? cryptoRandom;
    this.log = logger(opts.name ? `wg.${opts.name}` : "wg");
    this.mtu = opts.mtu ?? DEFAULT_MTU;
    this.#identity = staticIdentity(opts.privateKey);
    this.#publicKey = encodeKey(this.#identity.publicKey);
    this.#bind = opts.bind ?? defaultBind();
    this.#injectedBind = opts.bind !== undefined;
    this.#wantedPort = opts.listenPort;
    this.#transform = opts.transform;
    this.#resolve = opts.resolve ?? defaultResolver;
    this.#cookieChecker = new CookieChecker(this.#identity.publicKey, this.random);
    this.#underLoadThreshold = opts.underLoadThreshold ?? UNDER_LOAD_HANDSHAKES_PER_SECOND;
    this.#reresolveMs = opts.reresolveIntervalMs ?? 300_000;
    for (const p of opts.peers ?? []) this.addPeer(p);
  }

  get identity(): StaticIdentity {
    return this.#identity;
  }

  get publicKey(): string {
    return this.#publicKey;
  }

  /** Opens the socket and resolves peer endpoints; peers with persistent keepalive start a handshake. */
  async start(): Promise<void> {
    this.listenPort = await this.#bind.open(
      this.#wantedPort,
      (data, from) => this.receiveDatagram(data, from),
    );
    this.#started = true;
    const next = await this.#resolveEndpoints(true);
    if (this.#reresolveMs > 0) this.#scheduleReresolve(next);
    for (const p of this.peers) {
      if (p.persistentKeepaliveMs > 0 && p.endpoint) p.sendKeepalive();
    }
    this.log.info("device up", {
      publicKey: this.publicKey,
      listenPort: this.listenPort,
      peers: this.peers.length,
    });
  }

  addPeer(cfg: WgPeerConfig): Peer {
    const key = encodeKey(cfg.publicKey);
    if (this.#peerByKey.has(key)) throw new Error(`duplicate peer ${key}`);
    if (equalBytes(cfg.publicKey, this.#identity.publicKey)) {
      throw new Error("a peer cannot have the device's own public key");
    }
    const peer = new Peer(this, this.#identity, cfg.publicKey, cfg.presharedKey, cfg.persistentKeepalive);
    peer.reserved = cfg.reserved;
    peer.configuredEndpoint = cfg.endpoint;
    const literal = cfg.endpoint && literalIp(cfg.endpoint.host);
    if (cfg.endpoint && literal) peer.endpoint = { address: cfg.endpoint.host, port: cfg.endpoint.port };
    for (const a of cfg.allowedIps) {
      const bytes = literalIp(a.address);
      if (!bytes) throw new Error(`AllowedIPs ${a.address}/${a.prefix}: not an IP address`);
      this.#routes.insert(bytes, a.prefix, peer);
    }
    this.peers.push(peer);
    this.#peerByKey.set(key, peer);
    return peer;
  }

  // ---- runtime changes (UAPI `set=1`, src/wireguard/uapi.ts), each as wireguard-go applies it ----

  /** The peer with this public key, if any. */
  lookupPeer(publicKey: Uint8Array): Peer | undefined {
    return this.#peerByKey.get(encodeKey(publicKey));
  }

  /** Whether start() ran (wireguard-go isUp: a new or changed peer starts sending at once). */
  get started(): boolean {
    return this.#started && !this.#closed;
  }

  /** Removes a peer: its sessions, indices, timers and every AllowedIP it owned (wireguard-go RemovePeer). */
  removePeer(peer: Peer): void {
    const key = encodeKey(peer.publicKey);
    if (this.#peerByKey.get(key) !== peer) return;
    this.#peerByKey.delete(key);
    this.peers.splice(this.peers.indexOf(peer), 1);
    this.#routes.removeValue(peer);
    peer.stop();
    this.log.info("peer removed", { peer: peer.name });
  }

  removeAllPeers(): void {
    for (const p of [...this.peers]) this.removePeer(p);
  }

  /**
   * A new static private key (wireguard-go SetPrivateKey): a peer with the new public key is removed, every
   * peer's static-static DH and the cookie keys are recomputed, and every session is dropped, so the next
   * packet starts a handshake under the new identity.
   */
  setPrivateKey(privateKey: Uint8Array): void {
    if (equalBytes(privateKey, this.#identity.privateKey)) return;
    const identity = staticIdentity(privateKey);
    const self = this.lookupPeer(identity.publicKey);
    if (self) this.removePeer(self);
    this.#identity = identity;
    this.#publicKey = encodeKey(identity.publicKey);
    this.#cookieChecker = new CookieChecker(identity.publicKey, this.random);
    for (const p of this.peers) {
      p.handshake.setLocal(identity);
      p.zeroKeyMaterial();
    }
    this.log.info("private key changed; sessions dropped", { publicKey: this.#publicKey });
  }

  /**
   * Moves the UDP socket to `port` (0 = any). The new socket is opened before the old one closes, so a port
   * in use leaves the device as it was and rejects (wireguard-go answers EADDRINUSE).
   */
  async setListenPort(port: number): Promise<void> {
    if (!this.started) {
      this.#wantedPort = port;
      return;
    }
    if (port !== 0 && port === this.listenPort) return;
    const receive = (data: Uint8Array, from: BindEndpoint) => this.receiveDatagram(data, from);
    if (this.#injectedBind) {
      this.#bind.close();
      this.listenPort = await this.#bind.open(port, receive);
    } else {
      const next = defaultBind();
      const bound = await next.open(port, receive);
      this.#bind.close();
      this.#bind = next;
      this.listenPort = bound;
    }
    this.#wantedPort = port;
    this.log.info("listen port changed", { listenPort: this.listenPort });
  }

  /** A literal endpoint for a peer (UAPI gives no host names); roaming may move it again later. */
  setEndpoint(peer: Peer, endpoint: BindEndpoint): void {
    peer.endpoint = endpoint;
    peer.configuredEndpoint = { host: endpoint.address, port: endpoint.port };
    peer.resolution = undefined; // a literal: nothing left to resolve
  }

  /** Maps addr/prefix to peer (taking it from a previous owner, as wg does). addr is 4 or 16 bytes. */
  addAllowedIp(peer: Peer, addr: Uint8Array, prefix: number): void {
    this.#routes.insert(addr, prefix, peer);
  }

  removeAllowedIp(peer: Peer, addr: Uint8Array, prefix: number): void {
    this.#routes.remove(addr, prefix, peer);
  }

  clearAllowedIps(peer: Peer): void {
    this.#routes.removeValue(peer);
  }

  /** A peer's AllowedIPs as `addr/prefix` text, host bits clear. */
  allowedIpsOf(peer: Peer): string[] {
    return this.#routes.entriesFor(peer).map((e) =>
      `${e.addr.length === 4 ? formatIpv4(e.addr) : formatIpv6(e.addr)}/${e.prefix}`
    );
  }

  /**
   * Resolves every hostname endpoint; returns the delay until the next run: the re-resolve interval, or
   * sooner while a name fails (RESOLVE_RETRY_FIRST_MS, doubling per failure up to the interval). A failure is
   * one WARN naming the next attempt, and the peer's status says it (`resolution`).
   */
  async #resolveEndpoints(initial: boolean): Promise<number> {
    const failed: Peer[] = [];
    for (const p of this.peers) {
      const e = p.configuredEndpoint;
      if (!e || literalIp(e.host)) {
        p.resolution = undefined;
        continue;
      }
      // Don't override a peer that roamed to an endpoint it authenticated from recently.
      if (
        !initial && p.keypairs.current && this.clock.now() - p.keypairs.current.created < REJECT_AFTER_TIME_MS
      ) continue;
      const r = p.resolution ??= { failures: 0, warnedNoEndpoint: false };
      r.lastAttemptWallMs = this.clock.wallMs();
      r.warnedNoEndpoint = false;
      try {
        const addrs = await this.#resolve(e.host);
        if (addrs.length === 0) throw new Error("no addresses");
        p.endpoint = { address: addrs[0], port: e.port };
        r.failures = 0;
        r.error = undefined;
        r.lastResolvedWallMs = this.clock.wallMs();
      } catch (err) {
        r.failures++;
        r.error = (err as Error).message ?? String(err);
        failed.push(p);
      }
    }
    const every = this.#reresolveMs;
    const delay = failed.reduce(
      (d, p) => Math.min(d, RESOLVE_RETRY_FIRST_MS * 2 ** Math.min(16, p.resolution!.failures - 1)),
      every,
    );
    const nextWall = every > 0 ? this.clock.wallMs() + delay : undefined;
    for (const p of this.peers) if (p.resolution) p.resolution.nextAttemptWallMs = nextWall;
    for (const p of failed) {
      const e = p.configuredEndpoint!;
      this.log.warn("cannot resolve peer endpoint", {
        peer: p.name,
        endpoint: joinHostPort(e.host, e.port),
        error: p.resolution!.error,
        retryAt: nextWall !== undefined ? new Date(nextWall).toISOString() : "never",
        ...(p.endpoint ? { using: endpointKey(p.endpoint) } : {}),
      });
    }
    return delay;
  }

  #scheduleReresolve(delayMs: number): void {
    this.#reresolveTimer = this.clock.setTimer(() => {
      if (this.#closed) return;
      this.#resolveEndpoints(false).then(
        (next) => !this.#closed && this.#scheduleReresolve(next),
        () => !this.#closed && this.#scheduleReresolve(this.#reresolveMs),
      );
    }, delayMs);
  }

  /** True when some peer's AllowedIPs cover addr (4 or 16 bytes): cryptokey routing can send there. */
  hasRoute(addr: Uint8Array): boolean {
    return this.#routes.lookup(addr) !== undefined;
  }

  // ---- PacketInterface (the netstack's link) ----

  setReceiver(receive: (packet: Uint8Array) => void): void {
    this.#receiver = receive;
  }

  /** Sends one IP packet to the peer whose AllowedIPs cover its destination. */
  send(packet: Uint8Array): void {
    if (this.#closed) return;
    const dst = ipDestination(packet);
    const peer = dst ? this.#routes.lookup(dst) : undefined;
    if (!peer) {
      this.stats.txNoRoute++;
      return;
    }
    peer.send(packet);
  }

  // ---- PeerHost ----

  newIndex(peer: Peer): number {
    for (;;) {
      const index = randomU32(this.random);
      if (index !== 0 && !this.#indices.has(index)) {
        this.#indices.set(index, { peer });
        return index;
      }
    }
  }

  releaseIndex(index: number): void {
    this.#indices.delete(index);
  }

  registerKeypair(keypair: Keypair, peer: Peer): void {
    this.#indices.set(keypair.localIndex, { peer, keypair });
  }

  sealScratch(): Uint8Array | undefined {
    if (!this.#bind.copiesOnSend) return undefined;
    // Header, the largest padded packet (the MTU) and the tag.
    const need = this.mtu + 32;
    if (this.#sealScratch.length < need) this.#sealScratch = new Uint8Array(need);
    return this.#sealScratch;
  }

  sendDatagram(data: Uint8Array, to: BindEndpoint): void {
    this.stats.txDatagrams++;
    this.#bind.send(this.#transform ? this.#transform.encode(data) : data, to);
  }

  #peerAt(e: BindEndpoint): Peer | undefined {
    return this.peers.find((p) => p.endpoint?.port === e.port && p.endpoint.address === e.address);
  }

  // ---- receive path ----

  #drop(reason: DropReason, detail?: Record<string, unknown>): void {
    this.stats.dropped[reason]++;
    if (detail) this.#rateLimitedLog(reason, detail);
  }

  /** At most one line per reason per 10 s, so a flood cannot fill the log. */
  #rateLimitedLog(reason: string, detail: Record<string, unknown>): void {
    const now = this.clock.now();
    const entry = this.#logLimiter.get(reason);
    if (entry && now - entry.at < 10_000) {
      entry.suppressed++;
      return;
    }
    const suppressed = entry?.suppressed ?? 0;
    this.#logLimiter.set(reason, { at: now, suppressed: 0 });
    const { msg, ...fields } = detail;
    this.log.warn(String(msg ?? reason), suppressed ? { ...fields, suppressed } : fields);
  }

  /** Entry point for every UDP datagram. Never throws. */
  receiveDatagram(raw: Uint8Array, from: BindEndpoint): void {
    if (this.#closed) return;
    this.stats.rxDatagrams++;
    let data = raw;
    if (this.#transform) {
      const decoded = this.#transform.decode(raw);
      if (!decoded) {
        return this.#drop("transform", {
          msg: "datagram failed to deobfuscate (different Obfs password, or not WireGuard)",
          from: endpointKey(from),
        });
      }
      data = decoded;
    }
    // Bytes 1..3 may carry anything (a WARP client id): accepted whatever a peer's own Reserved setting.
    switch (messageTypeAnyReserved(data)) {
      case MESSAGE_INITIATION:
      case MESSAGE_RESPONSE:
        return this.#receiveHandshake(data, from);
      case MESSAGE_COOKIE_REPLY:
        return this.#receiveCookieReply(data);
      case MESSAGE_TRANSPORT:
        return this.#receiveTransport(data, from);
      default:
        return this.#drop("malformed");
    }
  }

  #isUnderLoad(): boolean {
    const now = this.clock.now();
    if (now - this.#handshakeWindowStart >= 1000) {
      this.#handshakeWindowStart = now;
      this.#handshakesInWindow = 0;
    }
    this.#handshakesInWindow++;
    if (this.#handshakesInWindow > this.#underLoadThreshold) {
      this.#underLoadUntil = now + UNDER_LOAD_AFTER_TIME_MS;
    }
    return now < this.#underLoadUntil;
  }

  /** Token bucket per source IP, 20/s with a burst of 5 (applies only under load). */
  #allowSource(address: string): boolean {
    const now = this.clock.now();
    let b = this.#sourceBuckets.get(address);
    if (!b) {
      if (this.#sourceBuckets.size > 4096) this.#sourceBuckets.clear();
      b = { tokens: HANDSHAKE_BURST_PER_SOURCE, at: now };
      this.#sourceBuckets.set(address, b);
    }
    b.tokens = Math.min(
      HANDSHAKE_BURST_PER_SOURCE,
      b.tokens + (now - b.at) * HANDSHAKES_PER_SECOND_PER_SOURCE / 1000,
    );
    b.at = now;
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  #receiveHandshake(received: Uint8Array, from: BindEndpoint): void {
    // A sender that fills bytes 1..3 computed its MACs over zeros there (as WARP clients do).
    const data = reservedIsZero(received) ? received : withZeroReserved(received);
    if (!this.#cookieChecker.checkMac1(data)) {
      return this.#drop("mac1", {
        msg: "handshake message with invalid mac1 (wrong peer public key?)",
        from: endpointKey(from),
      });
    }
    const now = this.clock.now();
    if (this.#isUnderLoad()) {
      const source = sourceBytes(from);
      if (!this.#cookieChecker.checkMac2(data, source, now)) {
        const sender = new DataView(data.buffer, data.byteOffset).getUint32(4, true);
        this.stats.cookieRepliesSent++;
        const reply = this.#cookieChecker.createReply(data, sender, source, now);
        // The sender is not authenticated yet: a peer whose endpoint is this address gets its Reserved bytes.
        const reserved = this.#peerAt(from)?.reserved;
        if (reserved) writeReserved(reply, reserved);
        this.sendDatagram(reply, from);
        return this.#drop("cookieRequired");
      }
      if (!this.#allowSource(from.address)) return this.#drop("rateLimited");
    }
    if (data[0] === MESSAGE_INITIATION) this.#receiveInitiation(new InitiationMessage(data), from);
    else this.#receiveResponse(new ResponseMessage(data), from);
  }

  #receiveInitiation(msg: InitiationMessage, from: BindEndpoint): void {
    const result = consumeInitiation(
      this.#identity,
      msg,
      (key) => this.#peerByKey.get(encodeKey(key))?.handshake,
      this.clock.now(),
      HANDSHAKE_INITIATION_RATE_MS,
    );
    if ("rejected" in result) {
      const what = {
        "decrypt": "handshake initiation failed to decrypt (wrong keys?)",
        "unknown-peer": "handshake initiation from an unknown peer public key",
        "replay": "replayed handshake initiation (timestamp not newer)",
        "flood": "handshake initiation flood from a peer",
      }[result.rejected];
      return this.#drop("handshakeRejected", { msg: what, from: endpointKey(from) });
    }
    const peer = this.#peerByKey.get(encodeKey(result.hs.remoteStatic))!;
    this.stats.rxAccepted++;
    // Handshake messages count in the peer's bytes, as in wireguard-go and the kernel (`wg show` transfer).
    peer.stats.rxBytes += msg.bytes.length;
    peer.endpoint = from;
    peer.timers.anyAuthenticatedPacketTraversal();
    peer.timers.anyAuthenticatedPacketReceived();
    if (!peer.sendHandshakeResponse()) {
      this.log.warn("failed to create handshake response", { peer: peer.name });
      return;
    }
    peer.onHandshakeComplete();
  }

  #receiveResponse(msg: ResponseMessage, from: BindEndpoint): void {
    const entry = this.#indices.get(msg.receiver);
    const peer = entry?.peer;
    if (!peer || entry.keypair || peer.handshake.state !== HandshakeState.InitiationCreated) {
      return this.#drop("unknownIndex");
    }
    if (!consumeResponse(peer.handshake, msg)) {
      return this.#drop("handshakeRejected", {
        msg: "handshake response failed to authenticate (wrong keys or preshared key?)",
        from: endpointKey(from),
      });
    }
    const keys = deriveSessionKeys(peer.handshake)!;
    this.stats.rxAccepted++;
    peer.stats.rxBytes += msg.bytes.length;
    peer.endpoint = from;
    peer.timers.anyAuthenticatedPacketTraversal();
    peer.timers.anyAuthenticatedPacketReceived();
    peer.handshakeCompletedAsInitiator(new Keypair(keys, this.clock.now()));
  }

  #receiveCookieReply(data: Uint8Array): void {
    const msg = new CookieReplyMessage(data);
    const entry = this.#indices.get(msg.receiver);
    if (!entry || entry.keypair) return this.#drop("unknownIndex");
    if (!entry.peer.cookieGenerator.consumeReply(msg, this.clock.now())) return this.#drop("cookieReply");
    this.stats.rxAccepted++;
    this.log.debug("cookie reply accepted; next handshake carries mac2", { peer: entry.peer.name });
  }

  #receiveTransport(data: Uint8Array, from: BindEndpoint): void {
    const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
    const entry = this.#indices.get(view.getUint32(4, true));
    const kp = entry?.keypair;
    if (!entry || !kp) return this.#drop("unknownIndex");
    const peer = entry.peer;
    const counter = view.getUint32(8, true) + view.getUint32(12, true) * 0x1_0000_0000;
    if (counter >= REJECT_AFTER_MESSAGES) return this.#drop("replay");
    if (this.clock.now() - kp.created >= REJECT_AFTER_TIME_MS) return this.#drop("expiredKey");
    // Decrypted in place: the datagram is only valid during this call, and so is the packet handed on (the
    // stack copies what it keeps), so no array per packet.
    const sealed = data.subarray(TRANSPORT_HEADER_SIZE);
    const plaintext = aead().open(
      kp.receiveKey,
      counterNonce(counter, this.#nonce),
      sealed,
      undefined,
      sealed,
    );
    if (!plaintext) return this.#drop("decrypt");
    if (!kp.replay.validate(counter, REJECT_AFTER_MESSAGES)) return this.#drop("replay");

    // Authenticated: roam to wherever it came from.
    peer.endpoint = from;
    peer.stats.rxBytes += data.length;
    peer.stats.rxPackets++;
    if (peer.receivedWithKeypair(kp)) {
      peer.timers.handshakeComplete();
      peer.sendStaged();
    }
    peer.keepKeyFreshReceiving();
    peer.timers.anyAuthenticatedPacketTraversal();
    peer.timers.anyAuthenticatedPacketReceived();
    if (plaintext.length === 0) {
      this.stats.rxAccepted++;
      return; // keepalive
    }
    peer.timers.dataReceived();
    const packet = trimToIpLength(plaintext);
    if (!packet) return this.#drop("innerMalformed");
    const src = ipSource(packet);
    if (!src || this.#routes.lookup(src) !== peer) return this.#drop("allowedIps");
    this.stats.rxAccepted++;
    try {
      this.#receiver(packet);
    } catch (e) {
      this.log.error("inner packet handler threw", { error: (e as Error).stack ?? String(e) });
    }
  }

  /** A status snapshot with no secrets (public keys only). */
  status(): { publicKey: string; listenPort: number; peers: PeerStatus[]; stats: DeviceStats } {
    return {
      publicKey: this.#publicKey,
      listenPort: this.listenPort,
      stats: structuredClone(this.stats),
      peers: this.peers.map((p) => ({
        publicKey: encodeKey(p.publicKey),
        endpoint: p.endpoint ? endpointKey(p.endpoint) : null,
        ...(p.resolution && p.configuredEndpoint
          ? {
            resolution: {
              name: joinHostPort(p.configuredEndpoint.host, p.configuredEndpoint.port),
              error: p.resolution.error ?? null,
              failures: p.resolution.failures,
              lastResolved: isoOrNull(p.resolution.lastResolvedWallMs),
              nextAttempt: isoOrNull(p.resolution.nextAttemptWallMs),
            },
          }
          : {}),
        allowedIps: this.allowedIpsOf(p),
        persistentKeepalive: p.persistentKeepaliveMs / 1000,
        keying: equalBytes(p.handshake.presharedKey, new Uint8Array(32)) ? "public-key-only" : "preshared",
        lastHandshake: p.stats.lastHandshakeWallMs
          ? new Date(p.stats.lastHandshakeWallMs).toISOString()
          : null,
        rxBytes: p.stats.rxBytes,
        txBytes: p.stats.txBytes,
        handshakes: p.stats.handshakes,
      })),
    };
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.clock.clearTimer(this.#reresolveTimer);
    for (const p of this.peers) p.stop();
    this.#indices.clear();
    this.#bind.close();
  }
}

function isoOrNull(wallMs: number | undefined): string | null {
  return wallMs === undefined ? null : new Date(wallMs).toISOString();
}

function literalIp(host: string): Uint8Array | null {
  return host.includes(":") ? parseIpv6(host) : parseIpv4(host);
}

/** IP bytes || port (big-endian): what a cookie is bound to. */
function sourceBytes(e: BindEndpoint): Uint8Array {
  const ip = literalIp(e.address) ?? new Uint8Array(0);
  const out = new Uint8Array(ip.length + 2);
  out.set(ip);
  out[ip.length] = e.port >> 8;
  out[ip.length + 1] = e.port & 0xff;
  return out;
}

function ipDestination(p: Uint8Array): Uint8Array | undefined {
  const v = p.length > 0 ? p[0] >> 4 : 0;
  if (v === 4 && p.length >= 20) return p.subarray(16, 20);
  if (v === 6 && p.length >= 40) return p.subarray(24, 40);
  return undefined;
}

function ipSource(p: Uint8Array): Uint8Array | undefined {
  const v = p[0] >> 4;
  if (v === 4) return p.subarray(12, 16);
  if (v === 6) return p.subarray(8, 24);
  return undefined;
}

/** Drops the transport padding: the IP header says how long the packet really is. */
function trimToIpLength(p: Uint8Array): Uint8Array | null {
  if (p.length < 1) return null;
  const v = p[0] >> 4;
  let len: number;
  if (v === 4) {
    if (p.length < 20) return null;
    len = (p[2] << 8) | p[3];
    if (len < 20) return null;
  } else if (v === 6) {
    if (p.length < 40) return null;
    len = 40 + ((p[4] << 8) | p[5]);
  } else return null;
  if (len > p.length) return null;
  return p.subarray(0, len);
}

/** The OS resolver (getaddrinfo: /etc/hosts and nsswitch apply), as wg-quick's endpoint lookup does. */
export const defaultResolver: Resolver = async (host) => {
  const addrs = await lookup(host, { all: true, verbatim: true });
  if (addrs.length === 0) throw new Error(`cannot resolve ${host}`);
  return addrs.map((a) => a.address);
};

export type { Endpoint };
