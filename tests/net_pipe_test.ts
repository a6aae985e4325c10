import { pipe } from "../src/net/pipe.ts";
import type { Conn } from "../src/net/types.ts";
import { within } from "./helpers/wait.ts";
import { assert, assertEquals } from "./helpers/assert.ts";

/** A loopback TCP pair: [client side, server side]. */
async function tcpPair(): Promise<[Deno.TcpConn, Deno.TcpConn, Deno.TcpListener]> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const [c, s] = await Promise.all([Deno.connect({ hostname: "127.0.0.1", port: l.addr.port }), l.accept()]);
  return [c, s, l];
}

async function readAll(c: Deno.Conn): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(65536);
  let total = 0;
  for (;;) {
    const n = await c.read(buf);
    if (n === null) break;
    chunks.push(buf.slice(0, n));
    total += n;
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const ch of chunks) {
    out.set(ch, off);
    off += ch.length;
  }
  return out;
}

async function writeAllRaw(c: Deno.Conn, data: Uint8Array) {
  let off = 0;
  while (off < data.length) off += await c.write(data.subarray(off));
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

Deno.test("pipe: byte-exact both ways with half-close carried and counters", async () => {
  // client <-> [s1 | pipe | c2] <-> server
  const [client, s1, l1] = await tcpPair();
  const [c2, server, l2] = await tcpPair();
  const up = pattern(3 * 1024 * 1024 + 17, 1);
  const down = pattern(2 * 1024 * 1024 + 5, 2);
  const piped = pipe(s1, c2, { bufferSize: 16384 });

  // The client sends everything then half-closes; the server only replies after seeing EOF, which proves
  // the FIN was carried while the other direction stayed open.
  const serverSide = (async () => {
    const got = await readAll(server);
    await writeAllRaw(server, down);
    await server.closeWrite();
    return got;
  })();
  const clientSide = (async () => {
    await writeAllRaw(client, up);
    await client.closeWrite();
    return await readAll(client);
  })();
  const [serverGot, clientGot] = await Promise.all([serverSide, clientSide]);
  const res = await piped;
  assertEquals(serverGot.length, up.length);
  assert(serverGot.every((v, i) => v === up[i]), "upstream bytes differ");
  assertEquals(clientGot.length, down.length);
  assert(clientGot.every((v, i) => v === down[i]), "downstream bytes differ");
  assertEquals(res.aToB, up.length);
  assertEquals(res.bToA, down.length);
  assertEquals(res.error, undefined);
  assertEquals(res.aborted, false);
  client.close();
  server.close();
  l1.close();
  l2.close();
});

/** A Conn whose read fails, to check that an error on one side closes both. */
function failingConn(): Conn & { closedCount: number } {
  const addr = { transport: "tcp" as const, hostname: "127.0.0.1", port: 1 };
  return {
    localAddr: addr,
    remoteAddr: addr,
    closedCount: 0,
    read: () => Promise.reject(new Deno.errors.ConnectionReset("reset by test")),
    write: (p) => Promise.resolve(p.length),
    closeWrite: () => Promise.resolve(),
    close() {
      this.closedCount++;
    },
  };
}

Deno.test("pipe: an error on one side closes both and is reported", async () => {
  const [client, s1, l1] = await tcpPair();
  const bad = failingConn();
  const res = await pipe(s1, bad);
  assert(res.error instanceof Deno.errors.ConnectionReset, "error reported");
  assertEquals(res.errorSide, "b");
  assert(bad.closedCount >= 1, "failing side closed");
  // The other side was closed too: the client sees EOF.
  assertEquals(await within(client.read(new Uint8Array(10)), "EOF at the client"), null);
  client.close();
  l1.close();
});

Deno.test("pipe: abort signal closes both sides", async () => {
  const [client, s1, l1] = await tcpPair();
  const [c2, server, l2] = await tcpPair();
  const ac = new AbortController();
  const piped = pipe(s1, c2, { signal: ac.signal });
  await writeAllRaw(client, new Uint8Array([1, 2, 3]));
  const got = new Uint8Array(3);
  let n = 0;
  while (n < 3) n += (await within(server.read(got.subarray(n)), "the piped bytes")) ?? 3;
  ac.abort();
  const res = await piped;
  assertEquals(res.aborted, true);
  assertEquals(res.aToB, 3);
  assertEquals(await within(client.read(new Uint8Array(10)), "EOF at the client"), null);
  assertEquals(await within(server.read(new Uint8Array(10)), "EOF at the server"), null);
  client.close();
  server.close();
  l1.close();
  l2.close();
});
