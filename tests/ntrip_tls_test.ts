/**
 * src_tls / dst_tls in the station worker, in process: the casters are TLS servers (node:tls over the
 * in-memory connections of a MemoryNet, a throwaway openssl certificate) that speak NTRIP inside TLS. The
 * worker's sessions run TLS over whatever Net the side has, so a MemoryNet stands for host, SOCKS5 and tunnel
 * alike. Time outside the handshakes is a ManualClock; waits on the real TLS work are bounded polls.
 */
import * as tls from "node:tls";
import { waitFor } from "./helpers/wait.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { ManualClock } from "../src/util/clock.ts";
import { logger } from "../src/util/log.ts";
import { type StationConfig, StationTlsCa } from "../src/config/ntrip_stations.ts";
import { StationWorker } from "../src/services/ntrip/worker.ts";
import { DialLimiter } from "../src/services/ntrip/dial_limiter.ts";
import type { StationPaths } from "../src/services/ntrip/egress.ts";
import { connDuplex } from "../src/net/tls.ts";
import { type MemoryConn, MemoryNet } from "./helpers/memory_net.ts";
import { advance, concat, NO_JITTER, rtcmFrame, settle, stationConfig } from "./helpers/ntrip_fakes.ts";
import { makeCert, type TestCert } from "./helpers/tls.ts";

const latin1 = (b: Uint8Array) => String.fromCharCode(...b);

/** A caster behind TLS on the MemoryNet: records each connection's plaintext; `answer` replies to the head. */
class TlsCaster {
  readonly sockets: tls.TLSSocket[] = [];
  readonly conns: MemoryConn[] = [];
  /** Plaintext received per connection (latin1). */
  readonly text: string[] = [];

  constructor(net: MemoryNet, host: string, port: number, cert: TestCert, answer: string) {
    const secureContext = tls.createSecureContext({ cert: cert.cert, key: cert.key });
    net.on(host, port, (c) => {
      const i = this.conns.push(c) - 1;
      this.text[i] = "";
      const s = new tls.TLSSocket(connDuplex(c), { isServer: true, secureContext });
      this.sockets.push(s);
      s.on("error", () => {});
      s.on("data", (chunk: Uint8Array) => {
        const before = this.text[i];
        this.text[i] += latin1(chunk);
        if (!before.includes("\r\n\r\n") && this.text[i].includes("\r\n\r\n")) s.write(answer);
      });
    });
  }

  request(i = 0): string {
    const t = this.text[i] ?? "";
    return t.slice(0, t.indexOf("\r\n\r\n") + 4);
  }

  body(i = 0): string {
    const t = this.text[i] ?? "";
    return t.slice(t.indexOf("\r\n\r\n") + 4);
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
  }
}

function station(ca: StationTlsCa | undefined, extra: Partial<StationConfig> = {}): StationConfig {
  return stationConfig({ id: "TLS1", ggaIntervalSec: 0, ...extra }, {
    source: { tls: true, tlsCa: ca },
    destination: { tls: true, tlsCa: ca },
  });
}

function worker(cfg: StationConfig, net: MemoryNet, clock: ManualClock): StationWorker {
  return new StationWorker(cfg, {
    clock,
    random: NO_JITTER,
    limiter: new DialLimiter(),
    agent: "NTRIP wgedge/test",
    log: logger("test.ntrip.tls"),
    openPaths: () =>
      Promise.resolve<StationPaths>({
        source: { net, kind: "direct" },
        destination: { net, kind: "direct" },
        release: () => {},
      }),
  });
}

async function withCert(fn: (cert: TestCert) => Promise<void>): Promise<void> {
  const cert = await makeCert("src.example", ["DNS:src.example", "DNS:dst.example"]);
  try {
    await fn(cert);
  } finally {
    await cert.remove();
  }
}

Deno.test("src_tls + dst_tls: both NTRIP sessions run inside TLS and the frames arrive whole", async () => {
  await withCert(async (cert) => {
    const clock = new ManualClock();
    const net = new MemoryNet();
    const ca = new StationTlsCa("test-ca.pem", [cert.cert], "test");
    const src = new TlsCaster(net, "src.example", 2101, cert, "ICY 200 OK\r\n");
    const dst = new TlsCaster(net, "dst.example", 2102, cert, "ICY 200 OK\r\n");
    const w = worker(station(ca), net, clock);
    try {
      w.start();
      clock.advance(0);
      await waitFor(
        () => w.state === "WAITING_DATA",
        () => `WAITING_DATA (state ${w.state}, ${w.lastError?.message})`,
      );
      assert(src.request().startsWith("GET /SRC HTTP/1.0\r\n"), src.request());
      const frames = [rtcmFrame(1005, 19), rtcmFrame(1077, 40, 7), rtcmFrame(1087, 30, 9)];
      src.sockets[0].write(frames[0]);
      await waitFor(() => w.state === "RUNNING", () => `RUNNING (state ${w.state}, ${w.lastError?.message})`);
      assert(dst.request().startsWith("SOURCE dstpw /DST\r\n"), dst.request());
      src.sockets[0].write(concat(frames.slice(1)));
      await waitFor(
        () => dst.body().length >= frames[1].length + frames[2].length,
        () => "frames at the destination",
      );
      assertEquals(
        dst.body(),
        latin1(concat(frames.slice(1))),
        "whole frames, decrypted by the destination caster",
      );
      // On the wire (the MemoryConn under TLS) there is no plaintext request.
      for (const c of [src.conns[0], dst.conns[0]]) {
        const wire = latin1(c.peer.writtenBytes());
        assert(!wire.includes("GET /SRC") && !wire.includes("SOURCE dstpw"), "the request travels encrypted");
      }
      assertEquals(w.lastError, undefined);
    } finally {
      await w.stop();
      src.close();
      dst.close();
      await settle();
    }
  });
});

Deno.test("src_tls: a certificate the station does not trust is a tls error, backoff, no NTRIP 1 fallback", async () => {
  await withCert(async (cert) => {
    const clock = new ManualClock();
    const net = new MemoryNet();
    const src = new TlsCaster(net, "src.example", 2101, cert, "ICY 200 OK\r\n");
    const cfg = station(undefined);
    cfg.source.version = "auto";
    const w = worker(cfg, net, clock);
    try {
      w.start();
      clock.advance(0);
      await waitFor(() => w.lastError !== undefined, () => `an error (state ${w.state})`);
      assertEquals(w.lastError!.side, "source");
      assertEquals(w.lastError!.kind, "tls");
      assertStringIncludes(
        w.lastError!.message,
        "TLS to src.example:2101 via memory: certificate not trusted",
      );
      await settle();
      assertEquals(w.sourcePhase, "backoff");
      assertEquals(
        net.dials.length,
        1,
        "a TLS failure is not an NTRIP 2 misunderstanding: no v1 retry at once",
      );
      assertEquals(src.request(), "", "no request was sent");
    } finally {
      await w.stop();
      src.close();
      await settle();
    }
  });
});

Deno.test("src_tls: a caster that never answers the handshake: tls error after 10 s on the clock", async () => {
  const clock = new ManualClock();
  const net = new MemoryNet();
  const held: MemoryConn[] = [];
  net.on("src.example", 2101, (c) => held.push(c)); // accepts TCP, never speaks
  const w = worker(station(undefined), net, clock);
  try {
    w.start();
    clock.advance(0);
    await waitFor(() => held.length === 1, () => "the dial");
    await advance(clock, 9_900);
    assertEquals(w.lastError, undefined);
    await advance(clock, 200);
    await waitFor(() => w.lastError !== undefined, () => "the handshake timeout");
    assertEquals(w.lastError!.kind, "tls");
    assertStringIncludes(w.lastError!.message, "no handshake within 10 s");
    assert(held[0].closed || held[0].peer.closed, "the connection is closed");
  } finally {
    await w.stop();
    await settle();
  }
});
