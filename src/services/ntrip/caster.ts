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
import { equalBytes } from "../../util/bytes.ts";
import { type Clock, systemClock, type TimerHandle } from "../../util/clock.ts";
import { logger } from "../../util/log.ts";
import { ChunkedDecoder } from "../../wire/chunked.ts";
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
  parseCasterRequest,
  sourceOkV2,
  type SourceRequest,
  sourcetableReply,
  unauthorizedReply,
  unavailableReply,
} from "../../wire/ntrip_caster.ts";
import { Rtcm3Scanner } from "../../wire/rtcm3.ts";
import type { ServiceRegistry } from "../registry.ts";
import { CasterClient } from "./caster_client.ts";
import {
  type CasterMountStatus,
  type CasterStatus,
  registerCasterReport,
  type RejectReason,
} from "./caster_report.ts";

export type {
  CasterClientStatus,
  CasterMountStatus,
  CasterSourceStatus,
  CasterStatus,
} from "./caster_report.ts";
import { joinHostPort } from "../../util/host_port.ts";

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
  readonly clients = new Set<CasterClient>();
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
  return joinHostPort(a.hostname, a.port);
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
    if (opts.registry) this.#unregister.push(registerCasterReport(opts.registry, () => this.status()));
    log.info("caster listening", { listen: this.#listen, mounts: [...this.#mounts.keys()].join(",") });
  }

  /** The port listened on (the one given, or the one picked for port 0). */
  get port(): number {
    return this.#listener.addr.port;
  }

  #describeListen(): string {
    const a = this.#listener.addr;
    return joinHostPort(a.hostname, a.port);
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
      for (const c of mount.clients) c.close();
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
        if (!userAllowed(config.users, c.request.credentials)) c.close();
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
      for (const c of m.clients) c.close();
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
    if (!await this.#writeBounded(conn, request.version === 2 ? clientOkV2(this.#server) : ICY_200_OK)) {
      return closeQuietly(conn);
    }
    if (!mount.source || this.#mounts.get(mount.name) !== mount) return closeQuietly(conn); // gone meanwhile
    // From here on the client gets every frame the source sends: it starts on a frame boundary.
    const bounds = { bytes: this.#limits.clientBacklogBytes, ms: this.#limits.clientBacklogMs };
    const client = new CasterClient(
      conn,
      request,
      this.#clock,
      bounds,
      (c) => mount.clients.delete(c),
      (n) => mount.bytesOut += n,
    );
    mount.clients.add(client);
    mount.clientsAccepted++;
    log.info("client connected", {
      mount: mount.name,
      from: address(conn),
      version: request.version,
      agent: request.agent ?? "-",
    });
    await client.serve();
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
    for (const c of mount.clients) {
      if (c.offer(frame)) continue;
      mount.clientsDroppedSlow++;
      log.info("client dropped: cannot keep up", {
        mount: mount.name,
        from: address(c.conn),
        backlogBytes: c.backlogBytes,
      });
      c.close();
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
    for (const c of mount.clients) c.finish(); // what is queued is still written
  }
}

/** A sourcetable line for a mount that has none: format RTCM 3, authentication B(asic) or N(one). */
function generatedStr(mount: string, auth: boolean): string {
  return `STR;${mount};${mount};RTCM 3;;0;;;;0.00;0.00;0;0;wgedge;none;${auth ? "B" : "N"};N;0;`;
}
