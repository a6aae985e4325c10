/**
 * The NTRIP caster (shared/spec/ntrip.md, "The caster"): per configured mountpoint one source at a time (v1
 * SOURCE or v2 POST, chunked or not) and any number of clients (v1 gets `ICY 200 OK` then data, v2 gets
 * HTTP/1.1 200 chunked). `GET /`, unknown mounts and mounts without a source get the sourcetable.
 *
 * Data from a source goes through an Rtcm3Scanner, so clients only ever get whole CRC-valid frames and a
 * client that joins starts on a frame boundary. Each client has a bounded backlog (bytes and age): one that
 * cannot keep up is dropped, the others go on. A source silent for `sourceIdleTimeoutMs` is dropped so it
 * can reconnect (its mount would stay taken otherwise). When a source leaves, its clients get what was
 * queued for them and are closed, as casters do.
 *
 * Time comes from an injected Clock (head timeout, silent source, backlog age). Passwords are compared in
 * constant time and never appear in status, metrics, logs or errors.
 */
import type { NtripCasterMount, NtripCasterUser } from "../../config/ntrip_caster.ts";
import type { Conn, Listener, Net } from "../../net/types.ts";
import { writeAll } from "../../net/pipe.ts";
import { concatBytes, equalBytes } from "../../util/bytes.ts";
import { type Clock, systemClock, type TimerHandle } from "../../util/clock.ts";
import { logger } from "../../util/log.ts";
import { ChunkedDecoder, encodeChunk } from "../../wire/chunked.ts";
import {
  BAD_PASSWORD,
  badRequestReply,
  clientOkV2,
  type ClientRequest,
  conflictReply,
  type Credentials,
  ICY_200_OK,
  MOUNT_TAKEN,
  notFoundReply,
  NTRIP_REQUEST_HEAD_MAX,
  type NtripVersion,
  parseCasterRequest,
  sourceOkV2,
  type SourceRequest,
  sourcetableReply,
  unauthorizedReply,
  unavailableReply,
} from "../../wire/ntrip_caster.ts";
import { type Ecef, Rtcm3Scanner } from "../../wire/rtcm3.ts";
import type { ServiceRegistry } from "../registry.ts";

const log = logger("ntrip-caster");
const encoder = new TextEncoder();

export interface CasterLimits {
  /** A connection must send its whole request head within this. */
  headTimeoutMs: number;
  /** A source that sends nothing for this long is dropped. */
  sourceIdleTimeoutMs: number;
  /** A client with more than this many bytes not yet written is dropped. */
  clientBacklogBytes: number;
  /** A client whose oldest unwritten frame is older than this is dropped. */
  clientBacklogMs: number;
  maxClientsPerMount: number;
  /** Connections (sources, clients and heads being read) at once; more are closed at accept. */
  maxConnections: number;
}

export const DEFAULT_CASTER_LIMITS: CasterLimits = {
  headTimeoutMs: 10_000,
  sourceIdleTimeoutMs: 60_000,
  clientBacklogBytes: 64 * 1024,
  clientBacklogMs: 5_000,
  maxClientsPerMount: 256,
  maxConnections: 4096,
};

/** Bytes of queued frames written to a client in one write (one chunk for v2). */
const WRITE_BATCH_BYTES = 16 * 1024;
const READ_BUFFER_BYTES = 16 * 1024;

export interface NtripCasterOptions {
  net: Net;
  hostname: string;
  port: number;
  mounts: NtripCasterMount[];
  /** Server / Source-Agent identity in replies: `NTRIP wgedge/<version>`. */
  server: string;
  clock?: Clock;
  registry?: ServiceRegistry;
  limits?: Partial<CasterLimits>;
}

export interface CasterSourceStatus {
  address: string;
  agent?: string;
  version: NtripVersion;
  connectedAt: string;
  bytesIn: number;
  frames: number;
}

export interface CasterClientStatus {
  address: string;
  agent?: string;
  version: NtripVersion;
  user?: string;
  connectedAt: string;
  bytesOut: number;
  backlogBytes: number;
}

export interface CasterMountStatus {
  mount: string;
  /** No users configured: anyone may pull. */
  open: boolean;
  source: CasterSourceStatus | null;
  clients: CasterClientStatus[];
  bytesIn: number;
  bytesOut: number;
  frames: number;
  framesByType: Record<string, number>;
  crcErrors: number;
  skippedBytes: number;
  lastFrameAgeMs?: number;
  stationId?: number;
  ecef?: Ecef;
  sourcesAccepted: number;
  /** Sources dropped after sourceIdleTimeoutMs of silence. */
  sourcesDroppedIdle: number;
  clientsAccepted: number;
  /** Clients dropped because their backlog passed the bound. */
  clientsDroppedSlow: number;
}

export interface CasterStatus {
  listen: string;
  mounts: CasterMountStatus[];
  rejected: Record<RejectReason, number>;
}

/** Named without "password"/"auth", which the admin redaction would hide as if they were secrets. */
type RejectReason =
  | "bad_request"
  | "bad_source_login"
  | "mount_taken"
  | "unknown_mount"
  | "bad_client_login"
  | "mount_full"
  | "head_timeout"
  | "too_many_connections";

/** One connected client of a mount: a queue of whole frames drained by one writer. */
class ClientSession {
  readonly queue: { bytes: Uint8Array; at: number }[] = [];
  queuedBytes = 0;
  /** Enqueue time of the frames being written now, while a write is in flight. */
  inflightAt: number | undefined;
  inflightBytes = 0;
  bytesOut = 0;
  closed = false;
  /** Set when the source left: close once the queue is written. */
  finishing = false;
  readonly connectedAt: string;

  constructor(
    readonly conn: Conn,
    readonly request: ClientRequest,
    wallMs: number,
  ) {
    this.connectedAt = new Date(wallMs).toISOString();
  }

  get backlogBytes(): number {
    return this.queuedBytes + this.inflightBytes;
  }

  /** Enqueue time of the oldest frame not yet fully written. */
  get behindSince(): number | undefined {
    return this.inflightAt ?? this.queue[0]?.at;
  }
}

class SourceSession {
  bytesIn = 0;
  frames = 0;
  lastDataAt: number;
  idleTimer: TimerHandle | undefined;
  closed = false;
  readonly connectedAt: string;

  constructor(readonly conn: Conn, readonly request: SourceRequest, now: number, wallMs: number) {
    this.lastDataAt = now;
    this.connectedAt = new Date(wallMs).toISOString();
  }
}

/** A configured mountpoint with its source, clients and counters. */
class Mount {
  source: SourceSession | undefined;
  readonly clients = new Set<ClientSession>();
  readonly scanner = new Rtcm3Scanner();
  bytesIn = 0;
  bytesOut = 0;
  sourcesAccepted = 0;
  sourcesDroppedIdle = 0;
  clientsAccepted = 0;
  clientsDroppedSlow = 0;

  constructor(public config: NtripCasterMount) {}

  get name(): string {
    return this.config.mount;
  }
}

function address(conn: Conn): string {
  const a = conn.remoteAddr;
  return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
}

function closeQuietly(conn: Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** Constant-time comparison of two passwords (their lengths may differ). */
function samePassword(given: string, expected: string): boolean {
  return equalBytes(encoder.encode(given), encoder.encode(expected));
}

function userAllowed(users: NtripCasterUser[] | undefined, c: Credentials | undefined): boolean {
  if (!users) return true;
  if (!c) return false;
  let ok = false;
  for (const u of users) if (u.user === c.user && samePassword(c.password, u.password)) ok = true;
  return ok;
}

export class NtripCaster {
  readonly #net: Net;
  readonly #server: string;
  readonly #clock: Clock;
  readonly #limits: CasterLimits;
  readonly #mounts = new Map<string, Mount>();
  readonly #conns = new Set<Conn>();
  readonly #rejected: Record<RejectReason, number> = {
    bad_request: 0,
    bad_source_login: 0,
    mount_taken: 0,
    unknown_mount: 0,
    bad_client_login: 0,
    mount_full: 0,
    head_timeout: 0,
    too_many_connections: 0,
  };
  #listener: Listener;
  #listen: string;
  #unregister: (() => void)[] = [];
  #stopped = false;

  /** Listens at once (throws when the address is busy). */
  constructor(opts: NtripCasterOptions) {
    this.#net = opts.net;
    this.#server = opts.server;
    this.#clock = opts.clock ?? systemClock;
    this.#limits = { ...DEFAULT_CASTER_LIMITS, ...opts.limits };
    for (const m of opts.mounts) this.#mounts.set(m.mount, new Mount(m));
    this.#listener = this.#net.listenTcp({ hostname: opts.hostname, port: opts.port });
    this.#listen = this.#describeListen();
    this.#accept(this.#listener);
    if (opts.registry) this.#register(opts.registry);
    log.info("caster listening", { listen: this.#listen, mounts: [...this.#mounts.keys()].join(",") });
  }

  /** The port listened on (the one given, or the one picked for port 0). */
  get port(): number {
    return this.#listener.addr.port;
  }

  #describeListen(): string {
    const a = this.#listener.addr;
    return a.hostname.includes(":") ? `[${a.hostname}]:${a.port}` : `${a.hostname}:${a.port}`;
  }

  /**
   * Moves the listener to another address; sessions keep running. The new address is bound before the old
   * one is closed; only when that fails on the same port (another address of it) is the old one closed
   * first. A failure throws and leaves the caster listening where it was.
   */
  relisten(hostname: string, port: number): void {
    const old = this.#listener;
    let next: Listener;
    try {
      next = this.#net.listenTcp({ hostname, port });
    } catch (e) {
      if (port !== old.addr.port) throw e;
      old.close();
      try {
        next = this.#net.listenTcp({ hostname, port });
      } catch (e2) {
        this.#listener = this.#net.listenTcp({ hostname: old.addr.hostname, port: old.addr.port });
        this.#accept(this.#listener);
        throw e2;
      }
    }
    this.#listener = next;
    this.#listen = this.#describeListen();
    old.close();
    this.#accept(next);
    log.info("caster listening", { listen: this.#listen });
  }

  /**
   * Applies a new mount list: a removed mount drops its source and clients; a new one is added; a changed
   * source_password drops the source (it must log in again); changed users drop the clients they no longer
   * admit; the rest of every mount keeps running.
   */
  setMounts(mounts: NtripCasterMount[]): void {
    const wanted = new Map(mounts.map((m) => [m.mount, m]));
    for (const [name, mount] of this.#mounts) {
      if (wanted.has(name)) continue;
      this.#mounts.delete(name);
      if (mount.source) this.#endSource(mount, mount.source, "mount removed");
      for (const c of mount.clients) this.#closeClient(mount, c);
      log.info("mount removed", { mount: name });
    }
    for (const [name, config] of wanted) {
      const mount = this.#mounts.get(name);
      if (!mount) {
        this.#mounts.set(name, new Mount(config));
        log.info("mount added", { mount: name });
        continue;
      }
      const old = mount.config;
      mount.config = config;
      if (mount.source && old.sourcePassword !== config.sourcePassword) {
        this.#endSource(mount, mount.source, "source password changed");
      }
      for (const c of mount.clients) {
        if (!userAllowed(config.users, c.request.credentials)) this.#closeClient(mount, c);
      }
    }
  }

  status(): CasterStatus {
    const now = this.#clock.now();
    const mounts: CasterMountStatus[] = [];
    for (const m of this.#mounts.values()) {
      const s = m.scanner.stats;
      const src = m.source;
      mounts.push({
        mount: m.name,
        open: m.config.users === undefined,
        source: src
          ? {
            address: address(src.conn),
            ...(src.request.agent !== undefined && { agent: src.request.agent }),
            version: src.request.version,
            connectedAt: src.connectedAt,
            bytesIn: src.bytesIn,
            frames: src.frames,
          }
          : null,
        clients: [...m.clients].map((c) => ({
          address: address(c.conn),
          ...(c.request.agent !== undefined && { agent: c.request.agent }),
          version: c.request.version,
          ...(c.request.credentials && { user: c.request.credentials.user }),
          connectedAt: c.connectedAt,
          bytesOut: c.bytesOut,
          backlogBytes: c.backlogBytes,
        })),
        bytesIn: m.bytesIn,
        bytesOut: m.bytesOut,
        frames: s.frames,
        framesByType: Object.fromEntries([...s.byType].sort((a, b) => a[0] - b[0])),
        crcErrors: s.crcErrors,
        skippedBytes: s.skippedBytes,
        ...(s.lastFrameAtMs !== undefined &&
          { lastFrameAgeMs: Math.max(0, Math.round(now - s.lastFrameAtMs)) }),
        ...(s.stationId !== undefined && { stationId: s.stationId }),
        ...(s.ecef && { ecef: s.ecef }),
        sourcesAccepted: m.sourcesAccepted,
        sourcesDroppedIdle: m.sourcesDroppedIdle,
        clientsAccepted: m.clientsAccepted,
        clientsDroppedSlow: m.clientsDroppedSlow,
      });
    }
    return { listen: this.#listen, mounts, rejected: { ...this.#rejected } };
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#listener.close();
    for (const m of this.#mounts.values()) {
      if (m.source) this.#endSource(m, m.source, "caster stopping");
      for (const c of m.clients) this.#closeClient(m, c);
    }
    for (const c of this.#conns) closeQuietly(c);
    this.#conns.clear();
    for (const u of this.#unregister) u();
    this.#unregister = [];
    await Promise.resolve();
  }

  // ---- connections ----

  #accept(listener: Listener): void {
    (async () => {
      for (;;) {
        let conn: Conn;
        try {
          conn = await listener.accept();
        } catch {
          return; // closed (stop or relisten)
        }
        if (this.#conns.size >= this.#limits.maxConnections) {
          this.#rejected.too_many_connections++;
          closeQuietly(conn);
          continue;
        }
        this.#conns.add(conn);
        this.#serve(conn).catch((e) => log.debug("connection ended", { error: String(e) })).finally(() => {
          this.#conns.delete(conn);
        });
      }
    })();
  }

  async #serve(conn: Conn): Promise<void> {
    const head = await this.#readHead(conn);
    if (!head) return;
    const { request, rest } = head;
    if (request.kind === "client") await this.#serveClient(conn, request);
    else await this.#serveSource(conn, request, rest);
  }

  /** Reads the request head under the head timeout; answers and closes on a malformed one. */
  async #readHead(
    conn: Conn,
  ): Promise<{ request: ClientRequest | SourceRequest; rest: Uint8Array } | undefined> {
    const buf = new Uint8Array(NTRIP_REQUEST_HEAD_MAX);
    let len = 0;
    let timedOut = false;
    const timer = this.#clock.setTimer(() => {
      timedOut = true;
      closeQuietly(conn);
    }, this.#limits.headTimeoutMs);
    try {
      for (;;) {
        let n: number | null;
        try {
          n = await conn.read(buf.subarray(len));
        } catch {
          n = null;
        }
        if (n === null) {
          if (timedOut) this.#rejected.head_timeout++;
          closeQuietly(conn);
          return undefined;
        }
        len += n;
        const r = parseCasterRequest(buf, len);
        if (r.status === "incomplete") continue;
        if (r.status === "error") {
          this.#rejected.bad_request++;
          log.info("bad request", { from: address(conn), error: r.message });
          await this.#refuse(conn, badRequestReply(r.version, this.#server));
          return undefined;
        }
        return { request: r.request, rest: buf.slice(r.headLength, len) };
      }
    } finally {
      this.#clock.clearTimer(timer);
    }
  }

  /** Writes a refusal and closes (bounded: a peer that does not read is closed by the head timeout). */
  async #refuse(conn: Conn, reply: Uint8Array): Promise<void> {
    const timer = this.#clock.setTimer(() => closeQuietly(conn), this.#limits.headTimeoutMs);
    try {
      await writeAll(conn, reply);
    } catch {
      // the peer left
    } finally {
      this.#clock.clearTimer(timer);
      closeQuietly(conn);
    }
  }

  #strLines(): string[] {
    const lines: string[] = [];
    for (const m of this.#mounts.values()) {
      const fromSource = m.source?.request.str;
      lines.push(
        m.config.str ??
          (fromSource?.startsWith("STR;") ? fromSource : generatedStr(m.name, m.config.users !== undefined)),
      );
    }
    return lines;
  }

  // ---- clients ----

  async #serveClient(conn: Conn, request: ClientRequest): Promise<void> {
    const mount = this.#mounts.get(request.mount);
    if (!mount) {
      if (request.mount !== "") this.#rejected.unknown_mount++;
      return this.#refuse(conn, sourcetableReply(request.version, this.#server, this.#strLines()));
    }
    if (!userAllowed(mount.config.users, request.credentials)) {
      this.#rejected.bad_client_login++;
      log.info("client refused: bad credentials", { mount: mount.name, from: address(conn) });
      return this.#refuse(conn, unauthorizedReply(request.version, this.#server, mount.name));
    }
    if (!mount.source) {
      return this.#refuse(conn, sourcetableReply(request.version, this.#server, this.#strLines()));
    }
    if (mount.clients.size >= this.#limits.maxClientsPerMount) {
      this.#rejected.mount_full++;
      return this.#refuse(conn, unavailableReply(request.version, this.#server));
    }
    const client = new ClientSession(conn, request, this.#clock.wallMs());
    if (!await this.#writeBounded(conn, request.version === 2 ? clientOkV2(this.#server) : ICY_200_OK)) {
      return closeQuietly(conn);
    }
    if (!mount.source || !this.#mounts.has(mount.name)) return closeQuietly(conn); // gone meanwhile
    // From here on the client gets every frame the source sends: it starts on a frame boundary.
    mount.clients.add(client);
    mount.clientsAccepted++;
    log.info("client connected", {
      mount: mount.name,
      from: address(conn),
      version: request.version,
      agent: request.agent ?? "-",
    });
    // Read what the client sends (GGA sentences) only to notice when it leaves.
    const sink = new Uint8Array(1024);
    try {
      while (!client.closed && (await conn.read(sink)) !== null) { /* discarded */ }
    } catch {
      // reset by the peer or closed by us
    }
    if (!client.finishing) this.#closeClient(mount, client);
  }

  /** Writes a reply head; false when the peer left or did not take it within the head timeout. */
  async #writeBounded(conn: Conn, bytes: Uint8Array): Promise<boolean> {
    const timer = this.#clock.setTimer(() => closeQuietly(conn), this.#limits.headTimeoutMs);
    try {
      await writeAll(conn, bytes);
      return true;
    } catch {
      return false;
    } finally {
      this.#clock.clearTimer(timer);
    }
  }

  /** Hands one frame (shared, not copied per client) to every client of the mount, dropping slow ones. */
  #broadcast(mount: Mount, frame: Uint8Array): void {
    const now = this.#clock.now();
    for (const c of mount.clients) {
      if (c.closed || c.finishing) continue;
      const behind = c.behindSince;
      if (
        c.backlogBytes + frame.length > this.#limits.clientBacklogBytes ||
        (behind !== undefined && now - behind > this.#limits.clientBacklogMs)
      ) {
        mount.clientsDroppedSlow++;
        log.info("client dropped: cannot keep up", {
          mount: mount.name,
          from: address(c.conn),
          backlogBytes: c.backlogBytes,
        });
        this.#closeClient(mount, c);
        continue;
      }
      c.queue.push({ bytes: frame, at: now });
      c.queuedBytes += frame.length;
      if (c.inflightAt === undefined) this.#drain(mount, c);
    }
  }

  /** Writes the client's queue in batches (one chunk each for v2) until it is empty. */
  async #drain(mount: Mount, c: ClientSession): Promise<void> {
    if (c.inflightAt !== undefined) return; // a writer is running
    try {
      while (c.queue.length > 0 && !c.closed) {
        c.inflightAt = c.queue[0].at;
        const parts: Uint8Array[] = [];
        let size = 0;
        while (c.queue.length > 0 && (size === 0 || size + c.queue[0].bytes.length <= WRITE_BATCH_BYTES)) {
          const item = c.queue.shift()!;
          parts.push(item.bytes);
          size += item.bytes.length;
        }
        c.queuedBytes -= size;
        c.inflightBytes = size;
        const batch = parts.length === 1 ? parts[0] : concatBytes(...parts);
        await writeAll(c.conn, c.request.version === 2 ? encodeChunk(batch) : batch);
        c.inflightBytes = 0;
        c.bytesOut += size;
        mount.bytesOut += size;
      }
    } catch {
      this.#closeClient(mount, c);
    } finally {
      c.inflightAt = undefined;
      c.inflightBytes = 0;
    }
    if (c.finishing && c.queue.length === 0) this.#closeClient(mount, c);
  }

  #closeClient(mount: Mount, c: ClientSession): void {
    if (c.closed) return;
    c.closed = true;
    c.queue.length = 0;
    c.queuedBytes = 0;
    mount.clients.delete(c);
    closeQuietly(c.conn);
  }

  /** After the source left: each client gets what is queued, then is closed (within the backlog age). */
  #finishClients(mount: Mount): void {
    for (const c of mount.clients) {
      c.finishing = true;
      if (c.queue.length === 0 && c.inflightAt === undefined) this.#closeClient(mount, c);
      else this.#clock.setTimer(() => this.#closeClient(mount, c), this.#limits.clientBacklogMs);
    }
  }

  // ---- sources ----

  async #serveSource(conn: Conn, request: SourceRequest, rest: Uint8Array): Promise<void> {
    const mount = this.#mounts.get(request.mount);
    const v2 = request.version === 2;
    const from = address(conn);
    if (!mount) {
      this.#rejected.unknown_mount++;
      log.info("source refused: no such mount", { mount: request.mount, from });
      return this.#refuse(conn, v2 ? notFoundReply(this.#server) : MOUNT_TAKEN);
    }
    if (!samePassword(request.credentials?.password ?? "", mount.config.sourcePassword)) {
      this.#rejected.bad_source_login++;
      log.info("source refused: bad password", { mount: mount.name, from });
      return this.#refuse(conn, v2 ? unauthorizedReply(2, this.#server, mount.name) : BAD_PASSWORD);
    }
    if (mount.source) {
      this.#rejected.mount_taken++;
      log.info("source refused: mount taken", { mount: mount.name, from });
      return this.#refuse(conn, v2 ? conflictReply(this.#server) : MOUNT_TAKEN);
    }
    const source = new SourceSession(conn, request, this.#clock.now(), this.#clock.wallMs());
    mount.source = source;
    mount.sourcesAccepted++;
    mount.scanner.discardPending(); // the last source's partial frame has no continuation
    try {
      await writeAll(conn, v2 ? sourceOkV2(this.#server) : ICY_200_OK);
    } catch {
      this.#endSource(mount, source, "left before it was accepted");
      return;
    }
    log.info("source connected", {
      mount: mount.name,
      from,
      version: request.version,
      agent: request.agent ?? "-",
    });
    this.#armIdle(mount, source);
    await this.#readSource(mount, source, rest);
    this.#endSource(mount, source, "disconnected");
  }

  async #readSource(mount: Mount, source: SourceSession, rest: Uint8Array): Promise<void> {
    const request = source.request;
    const chunked = request.body === "chunked" ? new ChunkedDecoder() : undefined;
    let remaining = request.body === "length" ? request.contentLength ?? 0 : Infinity;
    const take = (bytes: Uint8Array): boolean => {
      source.lastDataAt = this.#clock.now();
      if (chunked) {
        chunked.push(bytes, (data) => this.#ingest(mount, source, data));
        return !chunked.done;
      }
      const data = bytes.subarray(0, Math.min(bytes.length, remaining));
      remaining -= data.length;
      this.#ingest(mount, source, data);
      return remaining > 0;
    };
    try {
      if (rest.length > 0 && !take(rest)) return;
      const buf = new Uint8Array(READ_BUFFER_BYTES);
      while (!source.closed) {
        const n = await source.conn.read(buf);
        if (n === null || !take(buf.subarray(0, n))) return;
      }
    } catch (e) {
      if (!source.closed) log.info("source read failed", { mount: mount.name, error: (e as Error).message });
    }
  }

  #ingest(mount: Mount, source: SourceSession, data: Uint8Array): void {
    if (source.closed || data.length === 0) return;
    source.bytesIn += data.length;
    mount.bytesIn += data.length;
    mount.scanner.push(data, (frame) => {
      source.frames++;
      if (mount.clients.size > 0) this.#broadcast(mount, frame.slice());
    }, this.#clock.now());
  }

  /** Drops the source after sourceIdleTimeoutMs without bytes (one timer, re-armed lazily). */
  #armIdle(mount: Mount, source: SourceSession): void {
    const timeout = this.#limits.sourceIdleTimeoutMs;
    const check = () => {
      if (source.closed) return;
      const idle = this.#clock.now() - source.lastDataAt;
      if (idle >= timeout) {
        mount.sourcesDroppedIdle++;
        this.#endSource(mount, source, `silent for ${Math.round(idle / 1000)} s`);
      } else source.idleTimer = this.#clock.setTimer(check, timeout - idle);
    };
    source.idleTimer = this.#clock.setTimer(check, timeout);
  }

  #endSource(mount: Mount, source: SourceSession, why: string): void {
    if (source.closed) return;
    source.closed = true;
    this.#clock.clearTimer(source.idleTimer);
    closeQuietly(source.conn);
    if (mount.source === source) mount.source = undefined;
    log.info("source gone", { mount: mount.name, from: address(source.conn), reason: why });
    this.#finishClients(mount);
  }

  // ---- admin ----

  #register(registry: ServiceRegistry): void {
    this.#unregister.push(registry.registerStatus("ntrip_caster", () => this.status()));
    const m = registry.metrics;
    const L = ["mount"];
    const clients = m.gauge("wgedge_ntrip_caster_clients", "Clients connected to the mount.", L);
    const connected = m.gauge(
      "wgedge_ntrip_caster_source_connected",
      "1 while a source pushes to the mount, else 0.",
      L,
    );
    const bytes = m.counter(
      "wgedge_ntrip_caster_bytes_total",
      "Bytes received from sources (in) and sent to clients (out) as RTCM3 data.",
      [...L, "direction"],
    );
    const frames = m.counter("wgedge_ntrip_caster_frames_total", "CRC-valid RTCM3 frames from sources.", L);
    const slow = m.counter(
      "wgedge_ntrip_caster_clients_dropped_total",
      "Clients dropped because they could not keep up (backlog over its bound).",
      L,
    );
    const idle = m.counter(
      "wgedge_ntrip_caster_sources_dropped_total",
      "Sources dropped after sending nothing for the idle timeout.",
      L,
    );
    const rejected = m.counter(
      "wgedge_ntrip_caster_rejected_total",
      "Requests refused, by reason.",
      ["reason"],
    );
    const all = [clients, connected, bytes, frames, slow, idle, rejected];
    this.#unregister.push(m.addCollector(() => {
      for (const x of all) x.reset();
      const s = this.status();
      for (const mount of s.mounts) {
        const l = { mount: mount.mount };
        clients.set(l, mount.clients.length);
        connected.set(l, mount.source ? 1 : 0);
        bytes.set({ ...l, direction: "in" }, mount.bytesIn);
        bytes.set({ ...l, direction: "out" }, mount.bytesOut);
        frames.set(l, mount.frames);
        slow.set(l, mount.clientsDroppedSlow);
        idle.set(l, mount.sourcesDroppedIdle);
      }
      for (const [reason, n] of Object.entries(s.rejected)) rejected.set({ reason }, n);
    }));
  }
}

/** A sourcetable line for a mount that has none: format RTCM 3, authentication B(asic) or N(one). */
function generatedStr(mount: string, auth: boolean): string {
  return `STR;${mount};${mount};RTCM 3;;0;;;;0.00;0.00;0;0;wgedge;none;${auth ? "B" : "N"};N;0;`;
}
