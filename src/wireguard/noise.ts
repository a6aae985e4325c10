/**
 * Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s as WireGuard uses it (whitepaper 5.4.2-5.4.5). Pure functions over a
 * per-peer Handshake record; the device owns indices, timers and the MACs (cookie.ts).
 */
import { hash, kdf1, kdf2, kdf3 } from "../crypto/blake2s.ts";
import { aead, counterNonce } from "../crypto/aead.ts";
import { dh, generatePrivateKey, publicKey } from "../crypto/x25519.ts";
import { tai64n, tai64nAfter } from "../crypto/tai64n.ts";
import { equalBytes } from "../util/bytes.ts";
import { cryptoRandom, type RandomFill } from "../util/random.ts";
import { InitiationMessage, ResponseMessage } from "../wire/wireguard.ts";

const enc = new TextEncoder();
export const NOISE_CONSTRUCTION = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
export const WG_IDENTIFIER = "WireGuard v1 zx2c4 Jason@zx2c4.com";
export const WG_LABEL_MAC1 = "mac1----";
export const WG_LABEL_COOKIE = "cookie--";

/** C_i = HASH(construction); H_i = HASH(C_i || identifier). */
export const INITIAL_CHAIN_KEY = hash(enc.encode(NOISE_CONSTRUCTION));
export const INITIAL_HASH = hash(INITIAL_CHAIN_KEY, enc.encode(WG_IDENTIFIER));

const ZERO_NONCE = counterNonce(0);
const EMPTY = new Uint8Array(0);
const ZERO_KEY = new Uint8Array(32);

export interface StaticIdentity {
  privateKey: Uint8Array;
  publicKey: Uint8Array;
}

export function staticIdentity(privateKey: Uint8Array): StaticIdentity {
  return { privateKey, publicKey: publicKey(privateKey) };
}

export enum HandshakeState {
  Zeroed,
  InitiationCreated,
  InitiationConsumed,
  ResponseCreated,
  ResponseConsumed,
}

/** Handshake state for one peer (wireguard-go `Handshake`). */
export class Handshake {
  state = HandshakeState.Zeroed;
  hash: Uint8Array = new Uint8Array(32);
  chainKey: Uint8Array = new Uint8Array(32);
  localEphemeral: Uint8Array = new Uint8Array(32);
  remoteEphemeral: Uint8Array = new Uint8Array(32);
  localIndex = 0;
  remoteIndex = 0;
  /** Greatest TAI64N seen from this peer: an initiation not newer than it is a replay. */
  lastTimestamp: Uint8Array = new Uint8Array(12);
  /** Monotonic ms of the last consumed initiation (flood guard). */
  lastInitiationConsumed = -Infinity;
  /** DH(S_local, S_remote), fixed for the pair of static keys (recomputed when the local key changes). */
  precomputedStaticStatic: Uint8Array;

  constructor(
    public local: StaticIdentity,
    readonly remoteStatic: Uint8Array,
    public presharedKey: Uint8Array = ZERO_KEY,
  ) {
    this.precomputedStaticStatic = dh(local.privateKey, remoteStatic);
  }

  /** The device's private key changed (UAPI `private_key=`): wireguard-go SetPrivateKey's recomputation. */
  setLocal(local: StaticIdentity): void {
    this.local = local;
    this.precomputedStaticStatic = dh(local.privateKey, this.remoteStatic);
  }

  clear(): void {
    this.localEphemeral.fill(0);
    this.remoteEphemeral.fill(0);
    this.chainKey.fill(0);
    this.hash.fill(0);
    this.localIndex = 0;
    this.state = HandshakeState.Zeroed;
  }
}

function mixHash(h: Uint8Array, data: Uint8Array): Uint8Array {
  return hash(h, data);
}

function seal(key: Uint8Array, plaintext: Uint8Array, ad: Uint8Array): Uint8Array {
  return aead().seal(key, ZERO_NONCE, plaintext, ad);
}

function open(key: Uint8Array, sealed: Uint8Array, ad: Uint8Array): Uint8Array | null {
  return aead().open(key, ZERO_NONCE, sealed, ad);
}

/**
 * Fills an initiation (MACs left zero; cookie.ts adds them). Sets hs to InitiationCreated.
 * wallMs feeds the TAI64N timestamp; random the ephemeral key.
 */
export function createInitiation(
  hs: Handshake,
  localIndex: number,
  wallMs: number,
  random: RandomFill = cryptoRandom,
): InitiationMessage {
  const msg = InitiationMessage.create();
  let h = mixHash(INITIAL_HASH, hs.remoteStatic);
  const ephemeral = generatePrivateKey(random);
  const ePub = publicKey(ephemeral);
  let ck = kdf1(INITIAL_CHAIN_KEY, ePub);
  msg.ephemeral.set(ePub);
  h = mixHash(h, ePub);

  let key: Uint8Array;
  [ck, key] = kdf2(ck, dh(ephemeral, hs.remoteStatic));
  const encStatic = seal(key, hs.local.publicKey, h);
  msg.encryptedStatic.set(encStatic);
  h = mixHash(h, encStatic);

  [ck, key] = kdf2(ck, hs.precomputedStaticStatic);
  const encTimestamp = seal(key, tai64n(wallMs), h);
  msg.encryptedTimestamp.set(encTimestamp);
  h = mixHash(h, encTimestamp);

  msg.sender = localIndex;
  hs.localEphemeral = ephemeral;
  hs.hash = h;
  hs.chainKey = ck;
  hs.localIndex = localIndex;
  hs.state = HandshakeState.InitiationCreated;
  return msg;
}

/** Result of the first half of consuming an initiation: the initiator's static key and the chain so far. */
export interface InitiationOpened {
  remoteStatic: Uint8Array;
  hash: Uint8Array;
  chainKey: Uint8Array;
}

/**
 * Decrypts the initiator's static public key (one DH). mwgp uses exactly this to pick the server a client
 * belongs to without completing the handshake.
 */
export function openInitiationStatic(local: StaticIdentity, msg: InitiationMessage): InitiationOpened | null {
  let h = mixHash(INITIAL_HASH, local.publicKey);
  h = mixHash(h, msg.ephemeral);
  let ck = kdf1(INITIAL_CHAIN_KEY, msg.ephemeral);
  let key: Uint8Array;
  try {
    [ck, key] = kdf2(ck, dh(local.privateKey, msg.ephemeral));
  } catch {
    return null;
  }
  const remoteStatic = open(key, msg.encryptedStatic, h);
  if (!remoteStatic) return null;
  h = mixHash(h, msg.encryptedStatic);
  return { remoteStatic, hash: h, chainKey: ck };
}

export type InitiationRejection = "decrypt" | "unknown-peer" | "replay" | "flood";

/**
 * Consumes an initiation for the peer that `findPeer` returns for the decrypted static key. On success the
 * peer's Handshake is InitiationConsumed and returned; otherwise the reason.
 */
export function consumeInitiation(
  local: StaticIdentity,
  msg: InitiationMessage,
  findPeer: (remoteStatic: Uint8Array) => Handshake | undefined,
  nowMs: number,
  minInitiationIntervalMs: number,
): { hs: Handshake } | { rejected: InitiationRejection } {
  const opened = openInitiationStatic(local, msg);
  if (!opened) return { rejected: "decrypt" };
  const hs = findPeer(opened.remoteStatic);
  if (!hs) return { rejected: "unknown-peer" };
  let h = opened.hash;
  let ck = opened.chainKey;
  let key: Uint8Array;
  [ck, key] = kdf2(ck, hs.precomputedStaticStatic);
  const timestamp = open(key, msg.encryptedTimestamp, h);
  if (!timestamp) return { rejected: "decrypt" };
  h = mixHash(h, msg.encryptedTimestamp);
  if (!tai64nAfter(timestamp, hs.lastTimestamp)) return { rejected: "replay" };
  if (nowMs - hs.lastInitiationConsumed < minInitiationIntervalMs) return { rejected: "flood" };

  hs.hash = h;
  hs.chainKey = ck;
  hs.remoteIndex = msg.sender;
  hs.remoteEphemeral = msg.ephemeral.slice();
  hs.lastTimestamp = timestamp;
  hs.lastInitiationConsumed = nowMs;
  hs.state = HandshakeState.InitiationConsumed;
  return { hs };
}

/** Fills a response to the consumed initiation (MACs left zero). Sets hs to ResponseCreated. */
export function createResponse(
  hs: Handshake,
  localIndex: number,
  random: RandomFill = cryptoRandom,
): ResponseMessage | null {
  if (hs.state !== HandshakeState.InitiationConsumed) return null;
  const msg = ResponseMessage.create();
  msg.sender = localIndex;
  msg.receiver = hs.remoteIndex;
  const ephemeral = generatePrivateKey(random);
  const ePub = publicKey(ephemeral);
  msg.ephemeral.set(ePub);
  let h = mixHash(hs.hash, ePub);
  let ck = kdf1(hs.chainKey, ePub);
  try {
    ck = kdf1(ck, dh(ephemeral, hs.remoteEphemeral));
    ck = kdf1(ck, dh(ephemeral, hs.remoteStatic));
  } catch {
    return null;
  }
  const [ck2, tau, key] = kdf3(ck, hs.presharedKey);
  ck = ck2;
  h = mixHash(h, tau);
  const empty = seal(key, EMPTY, h);
  msg.encryptedNothing.set(empty);
  h = mixHash(h, empty);

  hs.hash = h;
  hs.chainKey = ck;
  hs.localIndex = localIndex;
  hs.localEphemeral = ephemeral;
  hs.state = HandshakeState.ResponseCreated;
  return msg;
}

/** Consumes a response for the handshake `hs` (found by the receiver index). True on success. */
export function consumeResponse(hs: Handshake, msg: ResponseMessage): boolean {
  if (hs.state !== HandshakeState.InitiationCreated || msg.receiver !== hs.localIndex) return false;
  let h = mixHash(hs.hash, msg.ephemeral);
  let ck = kdf1(hs.chainKey, msg.ephemeral);
  try {
    ck = kdf1(ck, dh(hs.localEphemeral, msg.ephemeral));
    ck = kdf1(ck, dh(hs.local.privateKey, msg.ephemeral));
  } catch {
    return false;
  }
  const [ck2, tau, key] = kdf3(ck, hs.presharedKey);
  h = mixHash(h, tau);
  const empty = open(key, msg.encryptedNothing, h);
  if (!empty) return false;
  h = mixHash(h, msg.encryptedNothing);

  hs.hash = h;
  hs.chainKey = ck2;
  hs.remoteIndex = msg.sender;
  hs.remoteEphemeral = msg.ephemeral.slice();
  hs.state = HandshakeState.ResponseConsumed;
  return true;
}

export interface SessionKeys {
  sendKey: Uint8Array;
  receiveKey: Uint8Array;
  localIndex: number;
  remoteIndex: number;
  isInitiator: boolean;
}

/**
 * (T_send, T_recv) = KDF2(ck, "") — the initiator sends with the first. Zeroes the handshake's secrets.
 * Valid after ResponseConsumed (initiator) or ResponseCreated (responder).
 */
export function deriveSessionKeys(hs: Handshake): SessionKeys | null {
  let isInitiator: boolean;
  if (hs.state === HandshakeState.ResponseConsumed) isInitiator = true;
  else if (hs.state === HandshakeState.ResponseCreated) isInitiator = false;
  else return null;
  const [t1, t2] = kdf2(hs.chainKey, EMPTY);
  const keys: SessionKeys = {
    sendKey: isInitiator ? t1 : t2,
    receiveKey: isInitiator ? t2 : t1,
    localIndex: hs.localIndex,
    remoteIndex: hs.remoteIndex,
    isInitiator,
  };
  hs.clear();
  return keys;
}

export function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return equalBytes(a, b);
}
