/**
 * One peer: its handshake, sessions, timers and the send path (wireguard-go peer.go + send.go). The device
 * owns the socket, the index table and the receive path, and reaches a peer through these methods.
 */
import { aead, counterNonce } from "../crypto/aead.ts";
import { encodeKey } from "../crypto/x25519.ts";
import type { Clock } from "../util/clock.ts";
import type { Logger } from "../util/log.ts";
import type { RandomFill } from "../util/random.ts";
import { MESSAGE_TRANSPORT, TRANSPORT_HEADER_SIZE, writeReserved } from "../wire/wireguard.ts";
import type { BindEndpoint } from "./bind.ts";
import { CookieGenerator } from "./cookie.ts";
import {
  MAX_STAGED_PACKETS,
  PADDING_MULTIPLE,
  REJECT_AFTER_MESSAGES,
  REJECT_AFTER_TIME_MS,
  REKEY_AFTER_MESSAGES,
  REKEY_AFTER_TIME_MS,
  REKEY_ON_RECEIVE_AGE_MS,
  REKEY_TIMEOUT_MS,
} from "./constants.ts";
import { Keypair, Keypairs } from "./keypair.ts";
import {
  createInitiation,
  createResponse,
  deriveSessionKeys,
  Handshake,
  type StaticIdentity,
} from "./noise.ts";
import { jitterFrom, PeerTimers } from "./timers.ts";
import type { Endpoint } from "./config.ts";
import { joinHostPort } from "../util/host_port.ts";

/** What a peer needs from its device. */
export interface PeerHost {
  readonly clock: Clock;
  readonly random: RandomFill;
  readonly log: Logger;
  readonly mtu: number;
  /** Reserves a fresh local index pointing at this peer's handshake. */
  newIndex(peer: Peer): number;
  releaseIndex(index: number): void;
  /** Registers the index of a derived session so transport packets find it. */
  registerKeypair(keypair: Keypair, peer: Peer): void;
  sendDatagram(data: Uint8Array, to: BindEndpoint): void;
  /**
   * A buffer a transport message may be sealed into when sendDatagram() copies what it is given before it
   * returns (the batched bind stages a copy), so the message needs no array of its own; undefined otherwise.
   */
  sealScratch(): Uint8Array | undefined;
}

export interface PeerStats {
  rxBytes: number;
  txBytes: number;
  rxPackets: number;
  txPackets: number;
  handshakes: number;
  handshakeAttempts: number;
  /** Wall-clock ms of the last completed handshake, 0 if none. */
  lastHandshakeWallMs: number;
  droppedStaged: number;
}

/** How a hostname endpoint's last resolution went (the Device resolves; status and logs read it). */
export interface EndpointResolution {
  /** Consecutive failed resolutions; 0 once the name resolved. */
  failures: number;
  /** Why the last attempt failed; undefined after a success. */
  error?: string;
  lastAttemptWallMs?: number;
  lastResolvedWallMs?: number;
  /** When the Device tries again (wall clock); undefined when it never will (re-resolution off). */
  nextAttemptWallMs?: number;
  /** Set once "no endpoint" has been said at WARN since the last attempt: once per retry, not per packet. */
  warnedNoEndpoint: boolean;
}

export class Peer {
  readonly handshake: Handshake;
  readonly cookieGenerator: CookieGenerator;
  readonly keypairs = new Keypairs();
  readonly timers: PeerTimers;
  readonly name: string;
  endpoint: BindEndpoint | undefined;
  /** As configured (may be a hostname) — kept for re-resolution. */
  configuredEndpoint: Endpoint | undefined;
  /** For a hostname endpoint: how resolving it went. */
  resolution: EndpointResolution | undefined;
  persistentKeepaliveMs: number;
  /** Bytes 1..3 written into every message sent to this peer (WARP client id); undefined = zeros. */
  reserved: Uint8Array | undefined;
  readonly stats: PeerStats = {
    rxBytes: 0,
    txBytes: 0,
    rxPackets: 0,
    txPackets: 0,
    handshakes: 0,
    handshakeAttempts: 0,
    lastHandshakeWallMs: 0,
    droppedStaged: 0,
  };
  #staged: Uint8Array[] = [];
  /** Where a packet is padded to a multiple of 16 before sealing (see #encryptAndSend). */
  #pad = new Uint8Array(0);
  #lastSentHandshake = -Infinity;
  #sentLastMinuteHandshake = false;
  #stopped = false;
  readonly #nonce = new Uint8Array(12);

  constructor(
    private readonly host: PeerHost,
    identity: StaticIdentity,
    readonly publicKey: Uint8Array,
    presharedKey: Uint8Array | undefined,
    persistentKeepaliveSec: number | undefined,
  ) {
    this.handshake = new Handshake(identity, publicKey, presharedKey);
    this.cookieGenerator = new CookieGenerator(publicKey);
    this.persistentKeepaliveMs = (persistentKeepaliveSec ?? 0) * 1000;
    this.name = encodeKey(publicKey).slice(0, 8) + "…";
    this.timers = new PeerTimers(host.clock, {
      sendHandshakeInitiation: (retry) => this.sendHandshakeInitiation(retry),
      sendKeepalive: () => this.sendKeepalive(),
      handshakeGaveUp: (attempts) => {
        host.log.warn("handshake did not complete, giving up", {
          peer: this.name,
          attempts,
          seconds: Math.round(attempts * REKEY_TIMEOUT_MS / 1000),
        });
        this.stats.droppedStaged += this.#staged.length;
        this.#staged = [];
      },
      handshakeRetrying: (attempt) => {
        host.log.info("handshake did not complete after 5 seconds, retrying", { peer: this.name, attempt });
      },
      newHandshakeNeeded: () => {
        host.log.debug("no reply to sent data, starting a new handshake", { peer: this.name });
        this.sendHandshakeInitiation(false);
      },
      zeroKeyMaterial: () => this.zeroKeyMaterial(),
      persistentKeepaliveMs: () => this.persistentKeepaliveMs,
      hasCurrentKeypair: () => this.keypairs.current !== undefined,
    }, jitterFrom(host.random));
  }

  get stagedCount(): number {
    return this.#staged.length;
  }

  /** Sends an initiation unless one went out less than REKEY_TIMEOUT ago (retries bypass that). */
  sendHandshakeInitiation(isRetry: boolean): void {
    if (this.#stopped) return;
    if (!isRetry) this.timers.handshakeAttempts = 0;
    const now = this.host.clock.now();
    if (!isRetry && now - this.#lastSentHandshake < REKEY_TIMEOUT_MS) return;
    if (!this.endpoint) {
      const r = this.resolution;
      if (r?.error !== undefined && !r.warnedNoEndpoint && this.configuredEndpoint) {
        // Traffic is waiting for a peer whose name does not resolve: say so once per retry, not per packet.
        r.warnedNoEndpoint = true;
        this.host.log.warn(
          "no endpoint for peer: its name does not resolve; packets wait (the oldest dropped when the queue is full)",
          {
            peer: this.name,
            endpoint: joinHostPort(this.configuredEndpoint.host, this.configuredEndpoint.port),
            error: r.error,
            retryAt: r.nextAttemptWallMs !== undefined
              ? new Date(r.nextAttemptWallMs).toISOString()
              : "never",
          },
        );
      } else this.host.log.debug("no endpoint for peer, cannot initiate", { peer: this.name });
      return;
    }
    this.#lastSentHandshake = now;
    if (this.handshake.localIndex) this.host.releaseIndex(this.handshake.localIndex);
    const index = this.host.newIndex(this);
    const msg = createInitiation(this.handshake, index, this.host.clock.wallMs(), this.host.random);
    this.cookieGenerator.addMacs(msg.bytes, now);
    this.stats.handshakeAttempts++;
    this.timers.anyAuthenticatedPacketTraversal();
    this.timers.anyAuthenticatedPacketSent();
    // Handshake messages count in txBytes, as in wireguard-go and the kernel (`wg show` transfer).
    this.stats.txBytes += msg.bytes.length;
    this.#sendMessage(msg.bytes, this.endpoint);
    this.timers.handshakeInitiated();
  }

  /** Answers a consumed initiation and installs the responder's session as `next`. */
  sendHandshakeResponse(): boolean {
    if (!this.endpoint) return false;
    const now = this.host.clock.now();
    const index = this.host.newIndex(this);
    const msg = createResponse(this.handshake, index, this.host.random);
    if (!msg) {
      this.host.releaseIndex(index);
      return false;
    }
    this.cookieGenerator.addMacs(msg.bytes, now);
    const keys = deriveSessionKeys(this.handshake);
    if (!keys) return false;
    this.installKeypair(new Keypair(keys, now));
    this.timers.anyAuthenticatedPacketTraversal();
    this.timers.anyAuthenticatedPacketSent();
    this.stats.txBytes += msg.bytes.length;
    this.#sendMessage(msg.bytes, this.endpoint);
    return true;
  }

  /** Installs a fresh session (wireguard-go BeginSymmetricSession). */
  installKeypair(kp: Keypair): void {
    const kps = this.keypairs;
    const retire = (k: Keypair | undefined) => {
      if (k) {
        this.host.releaseIndex(k.localIndex);
        k.zero();
      }
    };
    if (kp.isInitiator) {
      if (kps.next) {
        retire(kps.previous);
        kps.previous = kps.next;
        kps.next = undefined;
        retire(kps.current);
      } else {
        retire(kps.previous);
        kps.previous = kps.current;
      }
      kps.current = kp;
    } else {
      retire(kps.next);
      kps.next = kp;
      retire(kps.previous);
      kps.previous = undefined;
    }
    this.host.registerKeypair(kp, this);
    this.#sentLastMinuteHandshake = false;
    this.timers.sessionDerived();
  }

  /** Called when the initiator's handshake completed (response consumed). */
  handshakeCompletedAsInitiator(kp: Keypair): void {
    this.installKeypair(kp);
    this.onHandshakeComplete();
    // The responder cannot send until it hears from us: flush queued data, or a keepalive if there is none.
    if (!this.sendStaged()) this.sendKeepalive();
  }

  onHandshakeComplete(): void {
    this.timers.handshakeComplete();
    this.stats.handshakes++;
    this.stats.lastHandshakeWallMs = this.host.clock.wallMs();
    this.host.log.debug("handshake complete", { peer: this.name });
  }

  /** A transport packet authenticated under kp: promote `next` to current (wireguard-go ReceivedWithKeypair). */
  receivedWithKeypair(kp: Keypair): boolean {
    const kps = this.keypairs;
    if (kps.next !== kp) return false;
    if (kps.previous) {
      this.host.releaseIndex(kps.previous.localIndex);
      kps.previous.zero();
    }
    kps.previous = kps.current;
    kps.current = kp;
    kps.next = undefined;
    return true;
  }

  /**
   * Sends an IP packet now when a session is usable and nothing is queued before it; otherwise queues a copy
   * (the packet is only valid during the call) and sends everything queued, or starts a handshake.
   */
  send(packet: Uint8Array): void {
    if (this.#stopped) return;
    if (this.#staged.length === 0) {
      const kp = this.#usableKeypair();
      if (kp && this.endpoint) {
        this.#encryptAndSend(kp, packet);
        this.#keepKeyFreshSending(kp);
        return;
      }
    }
    if (this.#staged.length >= MAX_STAGED_PACKETS) {
      this.#staged.shift();
      this.stats.droppedStaged++;
    }
    this.#staged.push(packet.slice());
    this.sendStaged();
  }

  /** Sends staged packets if a fresh keypair exists; returns whether anything went out. */
  sendStaged(): boolean {
    if (this.#staged.length === 0) return false;
    const kp = this.#usableKeypair();
    if (!kp || !this.endpoint) {
      this.sendHandshakeInitiation(false);
      return false;
    }
    const packets = this.#staged;
    this.#staged = [];
    for (const p of packets) this.#encryptAndSend(kp, p);
    this.#keepKeyFreshSending(kp);
    return true;
  }

  /** Sends an empty transport packet, or starts a handshake when there is no usable session. */
  sendKeepalive(): void {
    if (this.#stopped) return;
    if (this.#staged.length > 0) {
      this.sendStaged();
      return;
    }
    const kp = this.#usableKeypair();
    if (!kp || !this.endpoint) {
      this.sendHandshakeInitiation(false);
      return;
    }
    this.#encryptAndSend(kp, new Uint8Array(0));
    this.#keepKeyFreshSending(kp);
  }

  #usableKeypair(): Keypair | undefined {
    const kp = this.keypairs.current;
    if (!kp) return undefined;
    const age = this.host.clock.now() - kp.created;
    if (age >= REJECT_AFTER_TIME_MS || kp.sendNonce >= REJECT_AFTER_MESSAGES) return undefined;
    return kp;
  }

  #encryptAndSend(kp: Keypair, packet: Uint8Array): void {
    const counter = kp.sendNonce++;
    const mtu = this.host.mtu;
    // Pad to a multiple of 16 without exceeding the MTU (whitepaper 5.4.6).
    let padded = packet.length === 0 ? 0 : Math.ceil(packet.length / PADDING_MULTIPLE) * PADDING_MULTIPLE;
    if (padded > mtu) padded = Math.max(packet.length, mtu);
    let plaintext = packet;
    if (padded !== packet.length) {
      // seal() reads the plaintext before it returns, so one buffer serves every padded packet (an ACK is
      // one of these: a fresh array per packet cost more than its encryption).
      if (this.#pad.length < padded) this.#pad = new Uint8Array(padded);
      plaintext = this.#pad.subarray(0, padded);
      plaintext.set(packet);
      plaintext.fill(0, packet.length);
    }
    const msg = aead().seal(
      kp.sendKey,
      counterNonce(counter, this.#nonce),
      plaintext,
      undefined,
      TRANSPORT_HEADER_SIZE,
      this.host.sealScratch(),
    );
    const view = new DataView(msg.buffer, msg.byteOffset, msg.byteLength);
    msg[0] = MESSAGE_TRANSPORT;
    // Reserved: zero (the scratch may hold another peer's Reserved bytes); #sendMessage writes WARP's.
    msg[1] = msg[2] = msg[3] = 0;
    view.setUint32(4, kp.remoteIndex, true);
    view.setUint32(8, counter % 0x1_0000_0000, true);
    view.setUint32(12, Math.floor(counter / 0x1_0000_0000), true);
    this.stats.txBytes += msg.length;
    this.stats.txPackets++;
    this.#sendMessage(msg, this.endpoint!);
    this.timers.anyAuthenticatedPacketTraversal();
    this.timers.anyAuthenticatedPacketSent();
    if (packet.length > 0) this.timers.dataSent();
  }

  /** Every message to this peer leaves here: MACs are computed over zero reserved bytes, then they are filled. */
  #sendMessage(msg: Uint8Array, to: BindEndpoint): void {
    if (this.reserved) writeReserved(msg, this.reserved);
    this.host.sendDatagram(msg, to);
  }

  /** The initiator rekeys on send once the session is REKEY_AFTER_TIME old or has sent too many messages. */
  #keepKeyFreshSending(kp: Keypair): void {
    const age = this.host.clock.now() - kp.created;
    if (kp.isInitiator && (kp.sendNonce > REKEY_AFTER_MESSAGES || age > REKEY_AFTER_TIME_MS)) {
      this.sendHandshakeInitiation(false);
    }
  }

  /** The initiator rekeys on receive when its session nears REJECT_AFTER_TIME and it has not tried yet. */
  keepKeyFreshReceiving(): void {
    if (this.#sentLastMinuteHandshake) return;
    const kp = this.keypairs.current;
    if (kp && kp.isInitiator && this.host.clock.now() - kp.created > REKEY_ON_RECEIVE_AGE_MS) {
      this.#sentLastMinuteHandshake = true;
      this.sendHandshakeInitiation(false);
    }
  }

  zeroKeyMaterial(): void {
    for (const k of this.keypairs.all()) {
      this.host.releaseIndex(k.localIndex);
      k.zero();
    }
    this.keypairs.previous = this.keypairs.current = this.keypairs.next = undefined;
    if (this.handshake.localIndex) this.host.releaseIndex(this.handshake.localIndex);
    this.handshake.clear();
    this.host.log.debug("zeroed key material", { peer: this.name });
  }

  stop(): void {
    this.#stopped = true;
    this.timers.stop();
    this.zeroKeyMaterial();
    this.#staged = [];
  }
}
