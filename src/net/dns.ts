/**
 * A stub resolver that asks DNS servers through any Net: a tunnel's `DNS =` servers are reached inside the
 * tunnel, so names that only the far side knows (nas.lan, a service in a private zone) resolve, as they would
 * for wg-quick with resolvconf. Like glibc's stub: recursive queries over UDP with a per-try timeout, servers
 * tried in order for a bounded number of rounds, TCP when an answer is truncated, search domains from the
 * hostnames listed in `DNS =`. A and AAAA are asked together; IPv4 answers come first. Nothing is cached:
 * relays resolve per dial on purpose (targets move).
 */
import type { Net } from "./types.ts";
import { isIpLiteral, isIpv6Literal, ResolveError, type Resolver, unbracket } from "./resolve.ts";
import { readExactly, writeAll } from "./pipe.ts";
import {
  addressesFor,
  buildQuery,
  DNS_PORT,
  type DnsResponse,
  parseResponse,
  QTYPE_A,
  QTYPE_AAAA,
  RCODE_NOERROR,
  RCODE_NXDOMAIN,
} from "../wire/dns.ts";
import { type Clock, systemClock } from "../util/clock.ts";
import { cryptoRandom, type RandomFill, randomU32 } from "../util/random.ts";

export interface DnsResolverOptions {
  /** Wait for one server's answer to one query (default 2000 ms, glibc's `timeout:` is 5 s). */
  timeoutMs?: number;
  /** Rounds over all servers (default 2, glibc's `attempts:`). */
  attempts?: number;
  /** Domains tried for a name without a dot (wg-quick: the hostnames in `DNS =`). */
  searchDomains?: string[];
  /** Server port (default 53; tests run servers on other ports). */
  port?: number;
  clock?: Clock;
  random?: RandomFill;
}

export interface DnsStats {
  queries: number;
  timeouts: number;
  /** Responses that failed to parse, or did not match the query (id, question). */
  badResponses: number;
  /** SERVFAIL/REFUSED/... answers (the next server is asked). */
  serverFailures: number;
  tcpRetries: number;
}

/** One query to one server, and what its answer must echo. */
interface Asked {
  server: string;
  query: Uint8Array;
  id: number;
  name: string;
  qtype: number;
}

/** An answer for one name: addresses, or "no such name" (NXDOMAIN) / "no address" (NOERROR, empty). */
type Lookup = { addrs: string[] } | { nxdomain: true } | { nodata: true };

/** RFC 1035 4.1.1 response codes a stub resolver meets (NXDOMAIN is handled as "no such name"). */
const RCODE_NAMES: Record<number, string> = {
  1: "FORMERR (format error)",
  2: "SERVFAIL (server failure)",
  4: "NOTIMP (not implemented)",
  5: "REFUSED (the server will not answer this query)",
};

/** Largest DNS message read over TCP (the length prefix is 16 bits). */
const MAX_TCP_MESSAGE = 65535;

export class DnsResolver implements Resolver {
  readonly stats: DnsStats = { queries: 0, timeouts: 0, badResponses: 0, serverFailures: 0, tcpRetries: 0 };
  readonly #timeoutMs: number;
  readonly #attempts: number;
  readonly #search: string[];
  readonly #clock: Clock;
  readonly #random: RandomFill;
  readonly #port: number;

  constructor(private readonly net: Net, readonly servers: string[], opts: DnsResolverOptions = {}) {
    if (servers.length === 0) throw new RangeError("DnsResolver needs at least one server");
    for (const s of servers) {
      if (!isIpLiteral(s)) throw new RangeError(`DNS server "${s}" must be a literal IP address`);
    }
    this.#timeoutMs = opts.timeoutMs ?? 2000;
    this.#attempts = opts.attempts ?? 2;
    this.#search = (opts.searchDomains ?? []).map((d) => d.replace(/^\.|\.$/g, "").toLowerCase());
    this.#clock = opts.clock ?? systemClock;
    this.#random = opts.random ?? cryptoRandom;
    this.#port = opts.port ?? DNS_PORT;
  }

  async resolve(hostname: string): Promise<string[]> {
    const host = unbracket(hostname);
    if (isIpLiteral(host)) return [host];
    const name = asciiName(host);
    const bare = !name.replace(/\.$/, "").includes(".");
    const searched = this.#search.map((d) => `${name}.${d}`);
    // A name without a dot is a short name: search domains first (glibc's ndots:1).
    const candidates = name.endsWith(".") ? [name] : bare ? [...searched, name] : [name, ...searched];
    let nxdomain = 0;
    for (const candidate of candidates) {
      // Both asked at once; one family failing (timeout, SERVFAIL) does not hide the other's addresses.
      const [a, aaaa] = await Promise.allSettled([
        this.#lookup(candidate, QTYPE_A),
        this.#lookup(candidate, QTYPE_AAAA),
      ]);
      const found = (r: PromiseSettledResult<Lookup>) =>
        r.status === "fulfilled" && "addrs" in r.value ? r.value.addrs : [];
      const addrs = [...found(a), ...found(aaaa)];
      if (addrs.length > 0) return addrs;
      if (a.status === "rejected") throw a.reason;
      if (aaaa.status === "rejected") throw aaaa.reason;
      if ("nxdomain" in a.value) nxdomain++;
    }
    const why = nxdomain === candidates.length
      ? "no such name"
      : `no address from ${this.servers.join(", ")}`;
    throw new ResolveError(host, new Error(why));
  }

  /** Asks the servers in order, `attempts` rounds; throws when no server gave a usable answer. */
  async #lookup(name: string, qtype: number): Promise<Lookup> {
    let lastError = "no answer";
    for (let round = 0; round < this.#attempts; round++) {
      for (const server of this.servers) {
        try {
          const res = await this.#ask(server, name, qtype);
          if (res.rcode === RCODE_NXDOMAIN) return { nxdomain: true };
          if (res.rcode !== RCODE_NOERROR) {
            this.stats.serverFailures++;
            lastError = `${server} answered ${RCODE_NAMES[res.rcode] ?? `rcode ${res.rcode}`}`;
            continue;
          }
          const addrs = addressesFor(res, name, qtype);
          return addrs.length ? { addrs } : { nodata: true };
        } catch (e) {
          lastError = `${server}: ${(e as Error).message}`;
        }
      }
    }
    throw new ResolveError(name, new Error(lastError));
  }

  async #ask(server: string, name: string, qtype: number): Promise<DnsResponse> {
    const id = randomU32(this.#random) & 0xffff;
    const query = buildQuery(id, name, qtype);
    this.stats.queries++;
    const asked: Asked = { server, query, id, name, qtype };
    const res = await this.#askUdp(asked);
    if (!res.truncated) return res;
    this.stats.tcpRetries++;
    return await this.#askTcp(asked);
  }

  #matches(res: DnsResponse, q: Asked): boolean {
    return res.id === q.id && res.question?.type === q.qtype &&
      res.question.name === q.name.replace(/\.$/, "");
  }

  /** Rejects after the per-try timeout (counted); `cancel` stops the timer once the try is over. */
  #deadline(what: string): { expired: Promise<never>; cancel(): void } {
    let timer: ReturnType<Clock["setTimer"]> | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = this.#clock.setTimer(() => {
        this.stats.timeouts++;
        reject(new Error(`no answer${what} within ${this.#timeoutMs} ms`));
      }, this.#timeoutMs);
    });
    expired.catch(() => {}); // a try that ended first never awaits it
    return { expired, cancel: () => this.#clock.clearTimer(timer) };
  }

  async #askUdp(q: Asked): Promise<DnsResponse> {
    const { server, query } = q;
    const sock = this.net.listenUdp({ hostname: isIpv6Literal(server) ? "::" : "0.0.0.0", port: 0 });
    const deadline = this.#deadline("");
    try {
      await sock.send(query, { transport: "udp", hostname: server, port: this.#port });
      // Bounded: every datagram that is not our answer is dropped and counted; the deadline ends the wait.
      for (;;) {
        const [data, from] = await Promise.race([sock.receive(), deadline.expired]);
        if (from.port !== this.#port || unbracket(from.hostname) !== server) continue;
        try {
          const res = parseResponse(data);
          if (this.#matches(res, q)) return res;
        } catch { /* counted below */ }
        this.stats.badResponses++;
      }
    } finally {
      deadline.cancel();
      sock.close();
    }
  }

  async #askTcp(q: Asked): Promise<DnsResponse> {
    const { server, query } = q;
    const conn = await this.net.dialTcp(server, this.#port, { timeoutMs: this.#timeoutMs });
    const deadline = this.#deadline(" over TCP");
    try {
      const framed = new Uint8Array(2 + query.length);
      new DataView(framed.buffer).setUint16(0, query.length);
      framed.set(query, 2);
      const exchange = (async () => {
        await writeAll(conn, framed);
        const len = new Uint8Array(2);
        if (!(await readExactly(conn, len))) throw new Error("connection closed before the answer");
        const size = (len[0] << 8) | len[1];
        if (size > MAX_TCP_MESSAGE || size === 0) throw new Error("bad TCP answer length");
        const body = new Uint8Array(size);
        if (!(await readExactly(conn, body))) throw new Error("connection closed in the answer");
        return body;
      })();
      const body = await Promise.race([exchange, deadline.expired]);
      const res = parseResponse(body);
      if (!this.#matches(res, q)) {
        this.stats.badResponses++;
        throw new Error("TCP answer does not match the query");
      }
      return res;
    } finally {
      // Also ends an exchange still reading when the deadline passed.
      deadline.cancel();
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }
}

/** Lower-case ASCII (IDNA via the URL parser) or a clear error for something that is not a host name. */
function asciiName(host: string): string {
  let ascii: string;
  try {
    ascii = new URL(`http://${host}/`).hostname;
  } catch {
    throw new ResolveError(host, new Error("not a valid host name"));
  }
  if (ascii.length > 253 + (ascii.endsWith(".") ? 1 : 0)) {
    throw new ResolveError(host, new Error("name too long"));
  }
  return ascii;
}
