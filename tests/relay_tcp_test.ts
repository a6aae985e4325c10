/**
 * TCP relay against real kernel TCP on loopback: byte-exact bulk both ways, 1 000 concurrent connections,
 * half-close, a dead target, and a target name that moves between dials.
 */
import { RelayService } from "../src/services/relay/service.ts";
import { parseRelayConfig } from "../src/config/relay.ts";
import { createHostNet } from "../src/net/host.ts";
import { MapResolver } from "../src/net/resolve.ts";
import { configureLogging } from "../src/util/log.ts";
import { waitFor, within } from "./helpers/wait.ts";
import { assert, assertEquals } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";

configureLogging({ level: "error" });

async function startRelay(line: string, env: Record<string, string> = {}, resolver?: MapResolver) {
  const net = createHostNet({ resolver });
  const svc = new RelayService({ listenNet: net, resolver });
  const cfg = parseRelayConfig({ RELAY_1: line, ENABLE_LOGGING: "n", ...env });
  await svc.apply(cfg, true);
  return svc;
}

async function writeAll(c: Deno.Conn, data: Uint8Array) {
  let off = 0;
  while (off < data.length) off += await c.write(data.subarray(off));
}

/** Deterministic stream: chunk i of a stream seeded s. */
function fillChunk(buf: Uint8Array, seed: number, offset: number) {
  for (let i = 0; i < buf.length; i++) buf[i] = ((offset + i) * 2654435761 + seed) >>> 24;
}

async function sendStream(c: Deno.Conn, total: number, seed: number) {
  const buf = new Uint8Array(256 * 1024);
  for (let off = 0; off < total; off += buf.length) {
    const n = Math.min(buf.length, total - off);
    fillChunk(buf.subarray(0, n), seed, off);
    await writeAll(c, buf.subarray(0, n));
  }
  await c.closeWrite();
}

/** Reads until EOF and checks every byte against the stream; returns the byte count. */
async function verifyStream(c: Deno.Conn, seed: number): Promise<number> {
  const buf = new Uint8Array(256 * 1024);
  const want = new Uint8Array(256 * 1024);
  let off = 0;
  for (;;) {
    const n = await c.read(buf);
    if (n === null) return off;
    fillChunk(want.subarray(0, n), seed, off);
    for (let i = 0; i < n; i++) {
      if (buf[i] !== want[i]) throw new Error(`byte ${off + i} differs`);
    }
    off += n;
  }
}

Deno.test("relay tcp: 64 MiB byte-exact both ways at once", async () => {
  const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const inPort = freePort();
  const svc = await startRelay(`${inPort};${(target.addr as Deno.NetAddr).port};127.0.0.1;TCP`);
  const SIZE = 64 * 1024 * 1024;
  try {
    const serverSide = (async () => {
      const c = await target.accept();
      const [got] = await Promise.all([verifyStream(c, 7), sendStream(c, SIZE, 9)]);
      c.close();
      return got;
    })();
    const client = await Deno.connect({ hostname: "127.0.0.1", port: inPort });
    const [, clientGot] = await Promise.all([sendStream(client, SIZE, 7), verifyStream(client, 9)]);
    client.close();
    assertEquals(await serverSide, SIZE);
    assertEquals(clientGot, SIZE);
    const st = svc.status()[0];
    assertEquals(st.bytesToTarget, SIZE);
    assertEquals(st.bytesToClient, SIZE);
    assertEquals(st.total, 1);
  } finally {
    await svc.stop();
    target.close();
  }
});

Deno.test("relay tcp: 1000 concurrent connections each get their own reply", async () => {
  const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const inPort = freePort();
  const svc = await startRelay(`${inPort};${(target.addr as Deno.NetAddr).port};127.0.0.1;TCP`);
  const N = 1000;
  const serverConns: Deno.Conn[] = [];
  // Echo server that upper-cases nothing: it echoes after reading one line, so every connection is open
  // at the same time before the first reply is written.
  const serving = (async () => {
    for (let i = 0; i < N; i++) serverConns.push(await target.accept());
  })();
  try {
    const clients = await Promise.all(
      Array.from({ length: N }, () => Deno.connect({ hostname: "127.0.0.1", port: inPort })),
    );
    await serving;
    await waitFor(() => svc.status()[0].active === N, "all connections active");
    assertEquals(svc.status()[0].active, N);
    // Every server side echoes what it receives, then the clients check they got their own message back.
    const echoes = serverConns.map(async (c) => {
      const buf = new Uint8Array(64);
      const n = await c.read(buf);
      if (n) await writeAll(c, buf.subarray(0, n));
      await c.closeWrite();
      await c.read(buf); // wait for the client's close
      c.close();
    });
    const enc = new TextEncoder();
    const results = await Promise.all(clients.map(async (c, i) => {
      const msg = enc.encode(`hello ${i}\n`);
      await writeAll(c, msg);
      const buf = new Uint8Array(64);
      let got = "";
      for (;;) {
        const n = await c.read(buf);
        if (n === null) break;
        got += new TextDecoder().decode(buf.subarray(0, n));
      }
      c.close();
      return got === `hello ${i}\n`;
    }));
    await Promise.all(echoes);
    assertEquals(results.filter((x) => x).length, N);
    await waitFor(() => svc.status()[0].active === 0, "all connections closed");
    assertEquals(svc.status()[0].total, N);
  } finally {
    await svc.stop();
    target.close();
  }
});

Deno.test("relay tcp: half-close is carried (target replies after client EOF)", async () => {
  const target = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const inPort = freePort();
  const svc = await startRelay(`${inPort};${(target.addr as Deno.NetAddr).port};127.0.0.1;TCP`);
  try {
    const server = (async () => {
      const c = await target.accept();
      const buf = new Uint8Array(1024);
      let total = 0;
      for (;;) {
        const n = await c.read(buf);
        if (n === null) break; // the client's FIN arrived through the relay
        total += n;
      }
      await writeAll(c, new TextEncoder().encode(`got ${total} bytes`));
      c.close();
    })();
    const client = await Deno.connect({ hostname: "127.0.0.1", port: inPort });
    await writeAll(client, new Uint8Array(5000));
    await client.closeWrite();
    const buf = new Uint8Array(100);
    let reply = "";
    for (;;) {
      const n = await within(client.read(buf), "the target's reply through the relay");
      if (n === null) break;
      reply += new TextDecoder().decode(buf.subarray(0, n));
    }
    await server;
    client.close();
    assertEquals(reply, "got 5000 bytes");
  } finally {
    await svc.stop();
    target.close();
  }
});

Deno.test("relay tcp: target down closes the client and counts the failure", async () => {
  const deadPort = freePort(); // nothing listens here: connect is refused
  const inPort = freePort();
  const svc = await startRelay(`${inPort};${deadPort};127.0.0.1;TCP`);
  try {
    for (let i = 0; i < 3; i++) {
      const client = await Deno.connect({ hostname: "127.0.0.1", port: inPort });
      let ended = false;
      try {
        ended = (await within(client.read(new Uint8Array(10)), "the relay to close the client")) === null;
      } catch (e) {
        ended = e instanceof Deno.errors.ConnectionReset;
      }
      client.close();
      assert(ended, "client connection closed by the relay");
    }
    await waitFor(() => svc.status()[0].failed === 3, "three failures counted");
    const st = svc.status()[0];
    assertEquals(st.failed, 3);
    assertEquals(st.active, 0);
    assert(
      st.lastError?.includes("refused") || st.lastError?.includes("connect"),
      `lastError: ${st.lastError}`,
    );
  } finally {
    await svc.stop();
  }
});

Deno.test("relay tcp: the target name is resolved again on every dial", async () => {
  const port = freePort(); // free on every address, so 127.0.0.3 can take it as well as 127.0.0.2
  const a = Deno.listen({ hostname: "127.0.0.2", port });
  const b = Deno.listen({ hostname: "127.0.0.3", port });
  const resolver = new MapResolver({ "pool.example.test": "127.0.0.2" });
  const inPort = freePort();
  const svc = await startRelay(`${inPort};${port};pool.example.test;TCP`, {}, resolver);
  const hello = async (l: Deno.Listener, name: string) => {
    const c = await l.accept();
    await writeAll(c, new TextEncoder().encode(name));
    c.close();
  };
  const fetchName = async () => {
    const c = await Deno.connect({ hostname: "127.0.0.1", port: inPort });
    const buf = new Uint8Array(16);
    let s = "";
    for (;;) {
      const n = await c.read(buf);
      if (n === null) break;
      s += new TextDecoder().decode(buf.subarray(0, n));
    }
    c.close();
    return s;
  };
  try {
    const [, first] = await Promise.all([hello(a, "A"), fetchName()]);
    assertEquals(first, "A");
    resolver.set("pool.example.test", "127.0.0.3");
    const [, second] = await Promise.all([hello(b, "B"), fetchName()]);
    assertEquals(second, "B");
    assertEquals(resolver.lookups.get("pool.example.test"), 2);
  } finally {
    await svc.stop();
    a.close();
    b.close();
  }
});
