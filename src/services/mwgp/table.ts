/**
 * The mwgp forwarding table (WireGuard index translation). An entry is one client handshake: the client's own
 * sender index C_o and the index the server sees C_p; the server's own index S_o and the one the client sees
 * S_p; both endpoints and public keys. Two maps: C_p -> entry (server-to-client direction) and S_p -> entry
 * (client-to-server direction). Proxy indices equal the originals unless 0 or already taken, then a fresh
 * random unused non-zero u32, drawn a bounded number of times (the original project looped forever here).
 */
import { cryptoRandom, type RandomFill } from "../../util/random.ts";
import type { SourceValidation } from "../../config/mwgp.ts";
import { joinHostPort } from "../../util/host_port.ts";

export interface UdpAddr {
  hostname: string;
  port: number;
}

export function addrKey(a: UdpAddr): string {
  return joinHostPort(a.hostname, a.port);
}

export function sameAddr(a: UdpAddr, b: UdpAddr): boolean {
  return a.port === b.port && a.hostname === b.hostname;
}

/** Parses "ip:port" / "[v6]:port" as written by addrKey; null if malformed. */
export function parseAddrKey(s: string): UdpAddr | null {
  const m = /^\[([^\]]+)\]:(\d{1,5})$/.exec(s) ?? /^([^:\[\]]+):(\d{1,5})$/.exec(s);
  if (!m) return null;
  const port = Number(m[2]);
  return port >= 1 && port <= 65535 ? { hostname: m[1], port } : null;
}

/** Attempts at drawing a random unused index before giving up (each try collides with p = size / 2^32). */
export const INDEX_ALLOCATION_TRIES = 64;

export class ForwardingEntry {
  serverOrigin = 0;
  serverProxy = 0;
  /** The client's initiation reached us obfuscated: everything sent back to it is obfuscated. */
  obfuscated = false;
  /** mac1 as the client wrote it and as we forwarded it (they differ when the initiation was rewritten). */
  initMac1FromClient?: Uint8Array;
  initMac1ToServer?: Uint8Array;
  /** Same for the response in the other direction. */
  respMac1FromServer?: Uint8Array;
  respMac1ToClient?: Uint8Array;
  /** Label of the configured server that matched (for stats and logs). */
  serverLabel = "";
  /** The duplicate-detection key it was inserted under (the client endpoint may roam later). */
  originKeyAtInsert = "";

  constructor(
    readonly clientOrigin: number,
    readonly clientProxy: number,
    public client: UdpAddr,
    public server: UdpAddr,
    readonly clientPublicKey: Uint8Array | null,
    readonly serverPublicKey: Uint8Array | null,
    public lastActive: number,
    readonly csvl: SourceValidation,
    readonly ssvl: SourceValidation,
  ) {}

  get completed(): boolean {
    return this.serverProxy !== 0;
  }
}

export class ForwardingTable {
  readonly byClientProxy = new Map<number, ForwardingEntry>();
  readonly byServerProxy = new Map<number, ForwardingEntry>();
  /** (client index, client endpoint) -> entry, to recognise a retransmitted or replayed initiation in O(1). */
  readonly #byOrigin = new Map<string, ForwardingEntry>();

  constructor(readonly maxEntries: number, private readonly random: RandomFill = cryptoRandom) {}

  get size(): number {
    return this.byClientProxy.size;
  }

  get completedCount(): number {
    return this.byServerProxy.size;
  }

  /** `wanted` if non-zero and free in `map`, else a random free non-zero index; 0 when none was found. */
  allocate(map: Map<number, ForwardingEntry>, wanted: number): number {
    if (wanted !== 0 && !map.has(wanted)) return wanted;
    const b = new Uint8Array(4 * INDEX_ALLOCATION_TRIES);
    this.random(b);
    const view = new DataView(b.buffer);
    for (let i = 0; i < INDEX_ALLOCATION_TRIES; i++) {
      const idx = view.getUint32(4 * i, true);
      if (idx !== 0 && !map.has(idx)) return idx;
    }
    return 0;
  }

  /** Registers an entry under its C_p (the caller allocated it with `allocate(byClientProxy, C_o)`). */
  insert(e: ForwardingEntry): void {
    this.byClientProxy.set(e.clientProxy, e);
    e.originKeyAtInsert = originKey(e.clientOrigin, e.client);
    this.#byOrigin.set(e.originKeyAtInsert, e);
    if (e.serverProxy !== 0) this.byServerProxy.set(e.serverProxy, e);
  }

  /** Records the server's index from a response; a second response replaces the first mapping (no orphan). */
  completeWithServer(e: ForwardingEntry, serverOrigin: number): boolean {
    if (e.serverProxy !== 0) {
      if (e.serverOrigin === serverOrigin) return true;
      if (this.byServerProxy.get(e.serverProxy) === e) this.byServerProxy.delete(e.serverProxy);
      e.serverProxy = 0;
    }
    const sp = this.allocate(this.byServerProxy, serverOrigin);
    if (sp === 0) return false;
    e.serverOrigin = serverOrigin;
    e.serverProxy = sp;
    this.byServerProxy.set(sp, e);
    return true;
  }

  remove(e: ForwardingEntry): void {
    if (this.byClientProxy.get(e.clientProxy) === e) this.byClientProxy.delete(e.clientProxy);
    for (const k of [originKey(e.clientOrigin, e.client), e.originKeyAtInsert]) {
      if (k && this.#byOrigin.get(k) === e) this.#byOrigin.delete(k);
    }
    if (e.serverProxy !== 0 && this.byServerProxy.get(e.serverProxy) === e) {
      this.byServerProxy.delete(e.serverProxy);
    }
  }

  /** An existing entry for a retransmitted or replayed initiation (same client index, endpoint and key). */
  findDuplicate(
    clientOrigin: number,
    client: UdpAddr,
    clientPublicKey: Uint8Array | null,
  ): ForwardingEntry | undefined {
    const e = this.#byOrigin.get(originKey(clientOrigin, client));
    if (
      e && e.clientOrigin === clientOrigin && sameAddr(e.client, client) &&
      keysEqual(e.clientPublicKey, clientPublicKey)
    ) {
      return e;
    }
    return undefined;
  }

  /**
   * Removes entries idle for longer than their limit (pending handshakes get `pendingMs`, completed ones
   * `idleMs`). Returns how many were removed and whether a completed one was among them.
   */
  expire(nowMs: number, idleMs: number, pendingMs: number): { removed: number; completedRemoved: boolean } {
    let removed = 0, completedRemoved = false;
    for (const e of [...this.byClientProxy.values()]) {
      const limit = e.completed ? idleMs : pendingMs;
      if (nowMs - e.lastActive > limit) {
        this.remove(e);
        removed++;
        if (e.completed) completedRemoved = true;
      }
    }
    return { removed, completedRemoved };
  }

  /** Makes room for one entry: the oldest pending handshake goes first. False if the table is full of live sessions. */
  makeRoom(): boolean {
    if (this.size < this.maxEntries) return true;
    let oldest: ForwardingEntry | undefined;
    for (const e of this.byClientProxy.values()) {
      if (!e.completed && (!oldest || e.lastActive < oldest.lastActive)) oldest = e;
    }
    if (!oldest) return false;
    this.remove(oldest);
    return true;
  }

  entries(): IterableIterator<ForwardingEntry> {
    return this.byClientProxy.values();
  }
}

function originKey(index: number, client: UdpAddr): string {
  return `${index}/${addrKey(client)}`;
}

function keysEqual(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
