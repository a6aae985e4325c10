/**
 * TLS client over any Conn: a host socket, a SOCKS5 connection or a userspace TCP connection inside a
 * WireGuard tunnel (which is not a Deno socket, so Deno.startTls cannot take it). The TLS itself is Deno's
 * (`node:tls`, rustls underneath) running over a `node:stream` Duplex that reads and writes the Conn; this
 * file only adapts the two stream shapes, bounds the handshake and names failures. We never implement TLS.
 *
 * Trust: without `caCerts` the server's certificate is verified against Deno's root store (Mozilla's roots
 * bundled with Deno; `DENO_TLS_CA_STORE=system` makes it the operating system's store; `DENO_CERT` adds a
 * file), shared by every connection. With `caCerts` they are trusted in addition to those roots (like
 * Deno.connectTls's caCerts); node:tls's `ca` replaces the roots instead, so the roots are passed along with
 * them, which costs each such connection its own copy of the root list (about 0.4 MB and 13 ms to build,
 * measured with Deno 2.9: prefer DENO_CERT for many connections). The certificate must match `hostname`
 * (DNS name or IP address); the name is sent as SNI unless it is an IP address.
 */
import { Duplex } from "node:stream";
import * as tls from "node:tls";
import { isIP } from "node:net";
import type { Conn, DialOptions, Net, NetAddr } from "./types.ts";
import { writeAll } from "./pipe.ts";
import { AdaptiveReadBuffer } from "../util/read_buffer.ts";

export const DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;
/** Ciphertext reads: 2 KiB, growing to 16 KiB (a full TLS record) while reads fill the buffer. */
const READ_MIN = 2 * 1024;
const READ_MAX = 16 * 1024;
/** Plaintext waiting for read() before the ciphertext is held back (ReadGate). */
const READ_QUEUE_MAX = 64 * 1024;

export interface TlsClientOptions {
  /** The name the certificate must carry (and the SNI): the host name dialled, or an IP literal. */
  hostname: string;
  /** Extra CA certificates (PEM) trusted in addition to the default roots. */
  caCerts?: string[];
  /** Bound of the handshake (default 10 s); 0 = none (the caller bounds it with `signal`). */
  timeoutMs?: number;
  /** Aborting during the handshake rejects and closes the connection. */
  signal?: AbortSignal;
}

export type TlsErrorKind = "certificate" | "handshake" | "timeout" | "aborted";

/**
 * Why a TLS connection could not be set up: `TLS to <hostname>: <detail>`. `code` is the node:tls code when
 * there is one. Nothing secret is in it (certificates are public).
 */
export class TlsError extends Error {
  override name = "TlsError";
  constructor(
    readonly kind: TlsErrorKind,
    readonly hostname: string,
    readonly detail: string,
    readonly code?: string,
  ) {
    super(`TLS to ${hostname}: ${detail}`);
  }
}

/** node:tls / rustls codes that mean "the certificate was not acceptable". */
const CERT_CODES = /CERT|SELF_SIGNED|ISSUER|LEAF_SIGNATURE|ALTNAME|HOSTNAME|CHAIN|VERIFY|EXPIRED|REVOKED/;

function certificateProblem(code: string | undefined, message: string): string {
  switch (code) {
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return `certificate does not match the host name (${message})`;
    case "CERT_HAS_EXPIRED":
      return "certificate has expired";
    case "CERT_NOT_YET_VALID":
      return "certificate is not yet valid";
    default:
      return `certificate not trusted: ${message}`;
  }
}

function describe(e: unknown, hostname: string): TlsError {
  if (e instanceof TlsError) return e;
  const err = e as Error & { code?: string };
  const code = typeof err?.code === "string" ? err.code : undefined;
  const message = String(err?.message ?? e).replace(/\s+/g, " ").trim();
  const cert = (code !== undefined && CERT_CODES.test(code)) ||
    /certificate|UnknownIssuer|NotValidForName|BadSignature/i.test(message);
  if (cert) {
    return new TlsError(
      "certificate",
      hostname,
      `${certificateProblem(code, message)}${code ? ` [${code}]` : ""}`,
      code,
    );
  }
  if (/InvalidContentType|wrong version number|CorruptMessage/i.test(message)) {
    return new TlsError(
      "handshake",
      hostname,
      `the server does not speak TLS on this port (${message})`,
      code,
    );
  }
  return new TlsError("handshake", hostname, `handshake failed: ${message}`, code);
}

/**
 * The PEM roots Deno's own store holds, for when extra CAs must be added to them (node:tls's `ca` replaces
 * the store): DENO_TLS_CA_STORE (default mozilla) in order, then DENO_CERT. Built once.
 */
let defaultRoots: string[] | undefined;

function rootsWith(extra: string[]): string[] {
  if (!defaultRoots) {
    const stores = (Deno.env.get("DENO_TLS_CA_STORE") ?? "mozilla").split(",").map((s) => s.trim());
    const roots: string[] = [];
    for (const s of stores) {
      if (s === "mozilla") roots.push(...tls.rootCertificates);
      else if (s === "system") {
        const get = (tls as unknown as { getCACertificates?(type: string): string[] }).getCACertificates;
        if (get) roots.push(...get("system"));
      }
    }
    const denoCert = Deno.env.get("DENO_CERT");
    if (denoCert) {
      try {
        roots.push(Deno.readTextFileSync(denoCert));
      } catch { /* Deno itself reports an unreadable DENO_CERT */ }
    }
    defaultRoots = roots;
  }
  return [...defaultRoots, ...extra];
}

/**
 * Holds a Duplex's reads from its Conn while held: the TLS connection's backpressure. node:tls in Deno 2.9
 * loses the peer's close_notify (no 'end', the reader waits forever) when its socket is paused and resumed
 * over a JS stream, so the socket always flows and the ciphertext is held back instead (the TCP window
 * then closes).
 */
export class ReadGate {
  #held = false;
  #waiters: (() => void)[] = [];

  get held(): boolean {
    return this.#held;
  }

  hold(): void {
    this.#held = true;
  }

  release(): void {
    this.#held = false;
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Resolves when released (at once when not held). */
  wait(): Promise<void> {
    return this.#held ? new Promise((resolve) => this.#waiters.push(resolve)) : Promise.resolve();
  }
}

/**
 * A node:stream Duplex over a Conn: what node:tls reads ciphertext from and writes it to (exported for a
 * server-side TLSSocket in tests). Destroying it closes the Conn; end() is the Conn's closeWrite(). Reads
 * from the Conn wait while `gate` is held.
 */
export function connDuplex(conn: Conn, gate?: ReadGate): Duplex {
  let reading = false;
  let wanted = false;
  const reads = new AdaptiveReadBuffer(READ_MIN, READ_MAX);
  const pump = async () => {
    reading = true;
    try {
      while (wanted) {
        if (gate?.held) await gate.wait();
        if (duplex.destroyed) return;
        const n = await conn.read(reads.buf);
        if (n === null) {
          duplex.push(null);
          return;
        }
        wanted = duplex.push(reads.filled(n).slice());
      }
    } catch (e) {
      duplex.destroy(e as Error);
    } finally {
      reading = false;
    }
  };
  const duplex: Duplex = new Duplex({
    allowHalfOpen: true,
    read() {
      wanted = true;
      if (!reading) pump();
    },
    write(chunk: Uint8Array, _encoding, callback) {
      writeAll(conn, chunk).then(() => callback(), (e) => callback(e));
    },
    final(callback) {
      conn.closeWrite().then(() => callback(), (e) => callback(e));
    },
    destroy(error, callback) {
      try {
        conn.close();
      } catch { /* already closed */ }
      callback(error);
    },
  });
  return duplex;
}

/**
 * The established TLS connection as a Conn (plaintext in and out). Reads: the socket flows into a queue;
 * past READ_QUEUE_MAX bytes the ciphertext is held back in the Duplex (ReadGate), so a reader that does not
 * read closes the TCP window. Writes: resolve once node:tls took the bytes AND the ciphertext waiting in the
 * Duplex is under its high-water mark (node:tls writes ciphertext to the Duplex without waiting), so a slow
 * peer slows the writer as a plain socket would.
 */
class TlsConn implements Conn {
  readonly localAddr: NetAddr;
  readonly remoteAddr: NetAddr;
  readonly #socket: tls.TLSSocket;
  readonly #duplex: Duplex;
  readonly #gate: ReadGate;
  readonly #conn: Conn;
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #ended = false;
  #closed = false;
  #error?: Error;
  #wake?: () => void;
  #drained?: () => void;

  constructor(socket: tls.TLSSocket, duplex: Duplex, gate: ReadGate, conn: Conn) {
    this.#socket = socket;
    this.#duplex = duplex;
    this.#gate = gate;
    this.#conn = conn;
    this.localAddr = conn.localAddr;
    this.remoteAddr = conn.remoteAddr;
    socket.on("data", (chunk: Uint8Array) => {
      if (chunk.length === 0 || this.#closed) return;
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued >= READ_QUEUE_MAX) gate.hold();
      this.#wakeReader();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wakeReader();
    });
    socket.on("error", (e: Error) => {
      this.#error ??= e;
      this.#wakeReader();
      this.#wakeWriter();
    });
    socket.on("close", () => {
      this.#ended = true;
      this.#wakeReader();
      this.#wakeWriter();
    });
    duplex.on("drain", () => this.#wakeWriter());
    duplex.on("close", () => this.#wakeWriter());
  }

  #wakeReader(): void {
    const w = this.#wake;
    this.#wake = undefined;
    w?.();
  }

  #wakeWriter(): void {
    const w = this.#drained;
    this.#drained = undefined;
    w?.();
  }

  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#closed) throw new Deno.errors.BadResource("connection closed");
      const head = this.#queue[0];
      if (head) {
        const n = Math.min(p.length, head.length);
        p.set(head.subarray(0, n));
        if (n < head.length) this.#queue[0] = head.subarray(n);
        else this.#queue.shift();
        this.#queued -= n;
        if (this.#gate.held && this.#queued < READ_QUEUE_MAX / 2) this.#gate.release();
        return n;
      }
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => (this.#wake = resolve));
    }
  }

  async write(p: Uint8Array): Promise<number> {
    if (this.#closed) throw new Deno.errors.BadResource("connection closed");
    if (this.#error) throw this.#error;
    if (p.length === 0) return 0;
    await new Promise<void>((resolve, reject) => {
      this.#socket.write(p, (e?: Error | null) => e ? reject(e) : resolve());
    });
    while (this.#duplex.writableNeedDrain && !this.#duplex.destroyed && !this.#closed) {
      await new Promise<void>((resolve) => (this.#drained = resolve));
    }
    if (this.#closed) throw new Deno.errors.BadResource("connection closed");
    if (this.#error) throw this.#error;
    if (this.#duplex.destroyed) throw new Deno.errors.BrokenPipe("the connection closed");
    return p.length;
  }

  /** Sends close_notify after what was written; reads go on (TLS 1.3 half-close). */
  closeWrite(): Promise<void> {
    if (this.#closed) return Promise.reject(new Deno.errors.BadResource("connection closed"));
    return new Promise((resolve) => this.#socket.end(() => resolve()));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue.length = 0;
    this.#queued = 0;
    this.#socket.destroy();
    try {
      this.#conn.close();
    } catch { /* closed with the socket */ }
    this.#gate.release();
    this.#wakeReader();
    this.#wakeWriter();
  }

  setNoDelay(noDelay?: boolean): void {
    this.#conn.setNoDelay?.(noDelay);
  }

  setKeepAlive(keepAlive?: boolean): void {
    this.#conn.setKeepAlive?.(keepAlive);
  }
}

/**
 * Runs a TLS client handshake over `conn` and resolves the encrypted connection. `conn` belongs to the
 * result from now on: on any failure it is closed and the promise rejects with a TlsError.
 */
export function connectTls(conn: Conn, opts: TlsClientOptions): Promise<Conn> {
  const hostname = opts.hostname.replace(/^\[(.*)\]$/, "$1");
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
  if (opts.signal?.aborted) {
    conn.close();
    return Promise.reject(new TlsError("aborted", hostname, "aborted"));
  }
  const gate = new ReadGate();
  const duplex = connDuplex(conn, gate);
  const socket = tls.connect({
    socket: duplex,
    host: hostname,
    servername: isIP(hostname) ? undefined : hostname,
    ca: opts.caCerts?.length ? rootsWith(opts.caCerts) : undefined,
    rejectUnauthorized: true,
  } as tls.ConnectionOptions);
  return new Promise<Conn>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const done = (err?: TlsError) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      socket.off("secureConnect", onSecure);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (!err) return resolve(new TlsConn(socket, duplex, gate, conn));
      socket.on("error", () => {}); // late errors of a socket given up on
      socket.destroy();
      try {
        conn.close();
      } catch { /* already closed */ }
      reject(err);
    };
    const onSecure = () => done();
    const onError = (e: unknown) => done(describe(e, hostname));
    const onClose = () =>
      done(new TlsError("handshake", hostname, "the connection closed during the handshake"));
    const onAbort = () => done(new TlsError("aborted", hostname, "aborted"));
    socket.once("secureConnect", onSecure);
    socket.once("error", onError);
    socket.once("close", onClose);
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (timeoutMs > 0) {
      const secs = Math.round(timeoutMs / 100) / 10;
      timer = setTimeout(
        () => done(new TlsError("timeout", hostname, `no handshake within ${secs} s`)),
        timeoutMs,
      );
    }
  });
}

export interface TlsNetOptions {
  caCerts?: string[];
  /** Handshake bound (default 10 s). */
  timeoutMs?: number;
}

/** A Net whose TCP dials are TLS connections to the name dialled, over `base`'s connections. Dials only. */
export function tlsNet(base: Net, opts: TlsNetOptions = {}): Net {
  return {
    name: `tls over ${base.name}`,
    resolver: base.resolver,
    async dialTcp(hostname: string, port: number, dial: DialOptions = {}): Promise<Conn> {
      const conn = await base.dialTcp(hostname, port, dial);
      return await connectTls(conn, {
        hostname,
        caCerts: opts.caCerts,
        timeoutMs: opts.timeoutMs,
        signal: dial.signal,
      });
    },
    listenTcp() {
      throw new Error(`${base.name}: a TLS Net only dials`);
    },
    listenUdp() {
      throw new Error(`${base.name}: a TLS Net only dials`);
    },
  };
}
