/**
 * TLS over any Conn (src/net/tls.ts): Deno's node:tls over a Duplex wrapping our connections. An echo through
 * a host socket (Deno.listenTls server), through a userspace TCP connection between two in-memory stacks (the
 * server a node:tls TLSSocket over the stack's Conn, the client dialling through tlsNet over a TunnelNet) and
 * through a SOCKS5 proxy (microsocks); backpressure both ways; certificate problems (untrusted, wrong name)
 * and non-TLS, silent and aborted peers fail with a TlsError saying which. Certificates are throwaway
 * self-signed ones from openssl; every wait is bounded.
 */
import * as tls from "node:tls";
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./helpers/assert.ts";
import { makeCert, type TestCert, tlsEchoServer } from "./helpers/tls.ts";
import { within } from "./helpers/tcp.ts";
import { interopTest, waitFor } from "./helpers/interop.ts";
import { freePort } from "./helpers/ports.ts";
import { connDuplex, connectTls, TlsError, tlsNet } from "../src/net/tls.ts";
import { createHostNet } from "../src/net/host.ts";
import { createSocks5Net } from "../src/net/socks5.ts";
import { TunnelNet } from "../src/net/tunnel.ts";
import { createLinkPair } from "../src/netstack/link.ts";
import { Stack } from "../src/netstack/stack.ts";
import { seededRandom } from "../src/util/random.ts";
import type { Conn } from "../src/net/types.ts";

const host = createHostNet();

function pattern(n: number, seed: number): Uint8Array {
  return seededRandom(seed)(new Uint8Array(n));
}

/** Writes `data` in pieces, then closes the write side; reads everything back until EOF. */
async function echo(conn: Conn, data: Uint8Array): Promise<Uint8Array> {
  const writing = (async () => {
    for (let o = 0; o < data.length;) {
      o += await conn.write(data.subarray(o, Math.min(data.length, o + 10_000)));
    }
    await conn.closeWrite();
  })();
  const chunks: Uint8Array[] = [];
  let total = 0;
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  await writing;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

async function withCert(fn: (cert: TestCert) => Promise<void>, sans?: string[]): Promise<void> {
  const cert = await makeCert("localhost", sans);
  try {
    await fn(cert);
  } finally {
    await cert.remove();
  }
}

Deno.test("tls: 1 MiB echo over a host connection, half-close carried, then a farewell after it", async () => {
  await withCert(async (cert) => {
    const server = tlsEchoServer(cert, "BYE");
    try {
      const tcp = await within(host.dialTcp("127.0.0.1", server.port), "dial");
      const conn = await within(
        connectTls(tcp, { hostname: "localhost", caCerts: [cert.cert] }),
        "handshake",
      );
      assertEquals(conn.remoteAddr, tcp.remoteAddr);
      assertEquals(conn.localAddr, tcp.localAddr);
      const data = pattern(1 << 20, 1);
      const got = await within(echo(conn, data), "echo");
      assertEquals(got.length, data.length + 3);
      assertEquals(got.subarray(0, data.length), data, "the echo, byte for byte");
      assertEquals(new TextDecoder().decode(got.subarray(data.length)), "BYE", "read after our closeWrite");
      conn.close();
      conn.close(); // idempotent
      await assertRejects(() => conn.read(new Uint8Array(1)), "closed");
      assertEquals(server.handshakes(), 1);
    } finally {
      await server.close();
    }
  });
});

Deno.test("tls: tlsNet dials by name and checks the certificate against it", async () => {
  await withCert(async (cert) => {
    const server = tlsEchoServer(cert);
    try {
      const net = tlsNet(host, { caCerts: [cert.cert] });
      assertEquals(net.name, "tls over host");
      const conn = await within(net.dialTcp("localhost", server.port, { timeoutMs: 5000 }), "dial");
      assertEquals(
        new TextDecoder().decode(await within(echo(conn, new TextEncoder().encode("ping")), "echo")),
        "ping",
      );
      conn.close();
      // An IP literal is checked against the certificate's IP entries (no SNI is sent for it).
      const byIp = await within(net.dialTcp("127.0.0.1", server.port), "dial by IP");
      byIp.close();
    } finally {
      await server.close();
    }
  });
});

Deno.test("tls: over a userspace TCP connection (two stacks), node:tls on both ends", async () => {
  await withCert(async (cert) => {
    const [la, lb] = createLinkPair({ random: seededRandom(41), delayMs: 1 });
    const a = new Stack(la, { addresses: [{ address: "10.9.0.2", prefix: 32 }], random: seededRandom(42) });
    const b = new Stack(lb, { addresses: [{ address: "10.9.0.1", prefix: 24 }], random: seededRandom(43) });
    const hold = setInterval(() => {}, 1000); // the stacks' timers are unref'd
    const listener = b.listenTcp(undefined, 443);
    let serverSocket: tls.TLSSocket | undefined;
    const served = (async () => {
      const conn = await listener.accept();
      const s = new tls.TLSSocket(connDuplex(conn), {
        isServer: true,
        secureContext: tls.createSecureContext({ cert: cert.cert, key: cert.key }),
      });
      serverSocket = s;
      s.on("error", () => {});
      // Echo without pause/resume (see ReadGate); the client's close_notify ends the echo.
      s.on("data", (chunk: Uint8Array) => s.write(chunk));
      s.on("end", () => s.end());
      await new Promise<void>((resolve) => s.once("close", () => resolve()));
    })();
    try {
      const net = tlsNet(new TunnelNet(a, "test"), { caCerts: [cert.cert] });
      const conn = await within(net.dialTcp("10.9.0.1", 443), "TLS dial through the stack");
      assertEquals(conn.remoteAddr.hostname, "10.9.0.1");
      const data = pattern(256 * 1024, 2);
      const got = await within(echo(conn, data), "echo through the stack");
      assertEquals(got, data);
      conn.close();
      await within(served, "the server side to close");
    } finally {
      serverSocket?.destroy();
      listener.close();
      a.close();
      b.close();
      clearInterval(hold);
    }
  }, ["DNS:localhost", "IP:10.9.0.1"]);
});

interopTest("tls: echo through a SOCKS5 proxy (microsocks), by name", async () => {
  await withCert(async (cert) => {
    const server = tlsEchoServer(cert);
    const port = freePort();
    const proxy = new Deno.Command("microsocks", {
      args: ["-i", "127.0.0.1", "-p", String(port)],
      stdout: "null",
      stderr: "null",
    }).spawn();
    try {
      await waitFor(async () => {
        try {
          (await Deno.connect({ hostname: "127.0.0.1", port })).close();
          return true;
        } catch {
          return false;
        }
      }, "microsocks listening");
      const net = tlsNet(createSocks5Net({ host: "127.0.0.1", port }, { base: host }), {
        caCerts: [cert.cert],
      });
      const conn = await within(net.dialTcp("localhost", server.port), "TLS through SOCKS5");
      const data = pattern(300_000, 4);
      assertEquals(await within(echo(conn, data), "echo through SOCKS5"), data);
      conn.close();
    } finally {
      try {
        proxy.kill("SIGKILL");
      } catch { /* exited */ }
      await proxy.status;
      await server.close();
    }
  });
}, { tools: ["microsocks", "openssl"] });

Deno.test("tls: backpressure both ways: a late reader gets every byte, a peer that never reads stops the writer", async () => {
  await withCert(async (cert) => {
    const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: cert.cert, key: cert.key });
    const port = (listener.addr as Deno.NetAddr).port;
    const big = pattern(8 << 20, 3);
    const served: Deno.TlsConn[] = [];
    const serving = (async () => {
      // First connection: 8 MiB at once, then close_notify. Second: handshake, then never read.
      const first = await listener.accept();
      served.push(first);
      for (let o = 0; o < big.length;) o += await first.write(big.subarray(o));
      await first.closeWrite();
      const second = await listener.accept();
      served.push(second);
      await second.handshake();
    })();
    try {
      const late = await within(
        connectTls(await host.dialTcp("127.0.0.1", port), { hostname: "localhost", caCerts: [cert.cert] }),
        "handshake",
      );
      await new Promise((r) => setTimeout(r, 300)); // the server writes; nobody reads yet
      const got = await within(echo(late, new Uint8Array(0)), "reading 8 MiB");
      assertEquals(got.length, big.length);
      assertEquals(got, big);
      late.close();

      const stuck = await within(
        connectTls(await host.dialTcp("127.0.0.1", port), { hostname: "localhost", caCerts: [cert.cert] }),
        "handshake",
      );
      let written = 0;
      let pending = true;
      const chunk = new Uint8Array(16 * 1024);
      const writing = (async () => {
        try {
          for (;;) written += await stuck.write(chunk);
        } catch { /* closed below */ }
        pending = false;
      })();
      await new Promise((r) => setTimeout(r, 1500));
      assert(pending, "the writer waits");
      assert(written < 64 << 20, `writes stop at the socket buffers, not after ${written} bytes`);
      stuck.close();
      await within(writing, "the blocked write to end with the close");
      await within(serving, "the server");
    } finally {
      listener.close();
      for (const c of served) {
        try {
          c.close();
        } catch { /* closed */ }
      }
    }
  });
});

async function failure(p: Promise<unknown>): Promise<TlsError> {
  try {
    await within(p, "the TLS attempt to end");
  } catch (e) {
    assert(e instanceof TlsError, `a TlsError, got ${(e as Error).name}: ${(e as Error).message}`);
    return e;
  }
  throw new Error("the TLS attempt succeeded");
}

Deno.test("tls: an untrusted certificate and a wrong name fail as certificate problems", async () => {
  await withCert(async (cert) => {
    const other = await makeCert("other", ["DNS:other"]);
    const server = tlsEchoServer(cert);
    try {
      const untrusted = await failure(
        connectTls(await host.dialTcp("127.0.0.1", server.port), { hostname: "localhost" }),
      );
      assertEquals(untrusted.kind, "certificate");
      assertStringIncludes(untrusted.message, "TLS to localhost: certificate not trusted");

      const otherCa = await failure(
        connectTls(await host.dialTcp("127.0.0.1", server.port), {
          hostname: "localhost",
          caCerts: [other.cert],
        }),
      );
      assertEquals(otherCa.kind, "certificate", otherCa.message);

      const wrongName = await failure(
        connectTls(await host.dialTcp("127.0.0.1", server.port), {
          hostname: "caster.example.com",
          caCerts: [cert.cert],
        }),
      );
      assertEquals(wrongName.kind, "certificate");
      assertStringIncludes(wrongName.message, "certificate does not match the host name");
      assertStringIncludes(wrongName.message, "caster.example.com");
      assertEquals(server.handshakes(), 0);
    } finally {
      await server.close();
      await other.remove();
    }
  });
});

Deno.test("tls: a plain-text server, a silent one and an abort each end with a TlsError and a closed conn", async () => {
  const plain = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const eofs: Promise<boolean>[] = [];
  const accepting = [
    (async () => {
      for await (const c of plain) {
        held.push(c);
        await c.write(new TextEncoder().encode("ICY 200 OK\r\n\r\n")).catch(() => {});
      }
    })().catch(() => {}),
    (async () => {
      for await (const c of silent) {
        held.push(c);
        // true once the client gives up and closes its socket (after its ClientHello).
        eofs.push((async () => {
          const buf = new Uint8Array(4096);
          try {
            while ((await c.read(buf)) !== null) { /* the ClientHello */ }
          } catch { /* reset: closed too */ }
          return true;
        })());
      }
    })().catch(() => {}),
  ];
  const port = (l: Deno.Listener) => (l.addr as Deno.NetAddr).port;
  try {
    const notTls = await failure(
      connectTls(await host.dialTcp("127.0.0.1", port(plain)), { hostname: "localhost" }),
    );
    assertEquals(notTls.kind, "handshake");
    assertStringIncludes(notTls.message, "does not speak TLS");

    const t0 = Date.now();
    const timeout = await failure(
      connectTls(await host.dialTcp("127.0.0.1", port(silent)), { hostname: "localhost", timeoutMs: 300 }),
    );
    assertEquals(timeout.kind, "timeout");
    assertStringIncludes(timeout.message, "no handshake within 0.3 s");
    assert(Date.now() - t0 < 5000);

    const ac = new AbortController();
    const aborting = connectTls(await host.dialTcp("127.0.0.1", port(silent)), {
      hostname: "localhost",
      signal: ac.signal,
    });
    setTimeout(() => ac.abort(), 50);
    assertEquals((await failure(aborting)).kind, "aborted");

    await within(waitLength(eofs, 2), "both silent connections accepted");
    assertEquals(await within(Promise.all(eofs), "the server to see both closes"), [true, true]);
  } finally {
    plain.close();
    silent.close();
    for (const c of held) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await Promise.all(accepting);
  }
});

function waitLength(list: unknown[], n: number): Promise<void> {
  return waitFor(() => list.length >= n, {
    what: () => `${n} entries (have ${list.length})`,
    intervalMs: 10,
  });
}
