/**
 * LinuxUdpBind (libc socket through FFI, recvmmsg batches) against itself and against Deno's own UDP socket on
 * loopback: sources, contents, sizes, bursts, ports, close, and the choice made by defaultBind().
 *
 * UDP may drop on a loaded machine, so every exchange resends what has not arrived yet (bounded) instead of
 * assuming one datagram is enough; nothing asserts on time.
 */
import { capabilityTest } from "./helpers/interop.ts";
import { assert, assertEquals, assertRejects, assertThrows } from "./helpers/assert.ts";
import { UdpBind } from "../src/wireguard/bind.ts";
import type { BindEndpoint } from "../src/wireguard/bind.ts";
import {
  defaultBind,
  LinuxUdpBind,
  linuxUdpBindUnavailable,
  RECV_BATCH,
  sockaddrAddress,
  SockaddrView,
  UDP_BIND_ENV,
} from "../src/wireguard/bind_linux.ts";

const unavailable = linuxUdpBindUnavailable();
/** Declared ignored (with the reason) where the batched socket cannot work; failed instead in CI. */
const bindTest = (def: Deno.TestDefinition) => capabilityTest(def, unavailable ?? null);

interface Got {
  data: Uint8Array;
  from: BindEndpoint;
}

/** A LinuxUdpBind that keeps copies of what it receives. */
async function openBind(
  hostname?: string,
  port = 0,
): Promise<{ bind: LinuxUdpBind; port: number; got: Got[] }> {
  const bind = new LinuxUdpBind(hostname);
  const got: Got[] = [];
  const p = await bind.open(port, (data, from) => got.push({ data: data.slice(), from }));
  return { bind, port: p, got };
}

async function closeBind(bind: LinuxUdpBind): Promise<void> {
  bind.close();
  await bind.closed;
}

/** A Deno UDP socket with a receive loop that keeps copies; close() ends the loop. */
function denoSocket(hostname: string): {
  conn: Deno.DatagramConn;
  port: number;
  got: Got[];
  close: () => Promise<void>;
} {
  const conn = Deno.listenDatagram({ transport: "udp", hostname, port: 0 });
  const got: Got[] = [];
  const loop = (async () => {
    const buf = new Uint8Array(65536);
    for (;;) {
      let d: Uint8Array, a: Deno.Addr;
      try {
        [d, a] = await conn.receive(buf);
      } catch {
        return; // closed
      }
      const na = a as Deno.NetAddr;
      got.push({ data: d.slice(), from: { address: na.hostname, port: na.port } });
    }
  })();
  return {
    conn,
    port: (conn.addr as Deno.NetAddr).port,
    got,
    close: async () => {
      conn.close();
      await loop;
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Calls `send` until `done()` holds: waits 20 ms steps between checks and sends again every 10 steps.
 * Bounded by 300 sends, far beyond what a lossy loopback needs.
 */
async function sendUntil(
  send: () => void | Promise<unknown>,
  done: () => boolean,
  what: string,
): Promise<void> {
  for (let attempt = 0; attempt < 300; attempt++) {
    await send();
    for (let step = 0; step < 10; step++) {
      if (done()) return;
      await sleep(20);
    }
  }
  throw new Error(`never delivered: ${what}`);
}

function pattern(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

function text(d: Uint8Array): string {
  return new TextDecoder().decode(d);
}

const enc = (s: string) => new TextEncoder().encode(s);

bindTest({
  name: "bind_linux: two LinuxUdpBinds exchange datagrams both ways with IPv4 and IPv6 sources",
  async fn() {
    const a = await openBind(), b = await openBind();
    try {
      assert(a.port > 0 && b.port > 0 && a.port !== b.port, `ports ${a.port} ${b.port}`);
      // a -> b over IPv4: b sees a's port from 127.0.0.1 (v4-mapped on the dual-stack socket, shown as IPv4).
      await sendUntil(
        () => a.bind.send(enc("hello v4"), { address: "127.0.0.1", port: b.port }),
        () => b.got.some((g) => text(g.data) === "hello v4"),
        "a -> b over 127.0.0.1",
      );
      const v4 = b.got.find((g) => text(g.data) === "hello v4")!;
      assertEquals({ ...v4.from }, { address: "127.0.0.1", port: a.port });
      // b answers to the endpoint object it was handed (the way a device answers a peer).
      await sendUntil(
        () => b.bind.send(enc("reply v4"), v4.from),
        () => a.got.some((g) => text(g.data) === "reply v4"),
        "b -> a back to the received endpoint",
      );
      assertEquals({ ...a.got.find((g) => text(g.data) === "reply v4")!.from }, {
        address: "127.0.0.1",
        port: b.port,
      });
      // IPv6 both ways.
      await sendUntil(
        () => a.bind.send(enc("hello v6"), { address: "::1", port: b.port }),
        () => b.got.some((g) => text(g.data) === "hello v6"),
        "a -> b over ::1",
      );
      const v6 = b.got.find((g) => text(g.data) === "hello v6")!;
      assertEquals({ ...v6.from }, { address: "::1", port: a.port });
      await sendUntil(
        () => b.bind.send(enc("reply v6"), v6.from),
        () => a.got.some((g) => text(g.data) === "reply v6"),
        "b -> a over ::1",
      );
      assertEquals({ ...a.got.find((g) => text(g.data) === "reply v6")!.from }, {
        address: "::1",
        port: b.port,
      });
      // One endpoint object per source: a device's peer keeps its identity (and cached sockaddr) across packets.
      const fromA = b.got.filter((g) => g.from.address === "127.0.0.1").map((g) => g.from);
      assert(fromA.every((f) => f === fromA[0]), "the same source yields the same endpoint object");
      assertEquals(a.bind.sendErrors + b.bind.sendErrors, 0);
    } finally {
      await closeBind(a.bind);
      await closeBind(b.bind);
    }
  },
});

bindTest({
  name: "bind_linux: LinuxUdpBind and Deno's UDP socket talk to each other over 127.0.0.1 and ::1",
  async fn() {
    const ours = await openBind();
    const s4 = denoSocket("127.0.0.1"), s6 = denoSocket("::1");
    try {
      for (const [sock, host] of [[s4, "127.0.0.1"], [s6, "::1"]] as const) {
        await sendUntil(
          () =>
            sock.conn.send(enc(`from deno ${host}`), { transport: "udp", hostname: host, port: ours.port }),
          () => ours.got.some((g) => text(g.data) === `from deno ${host}`),
          `deno ${host} -> LinuxUdpBind`,
        );
        const g = ours.got.find((g) => text(g.data) === `from deno ${host}`)!;
        assertEquals({ ...g.from }, { address: host, port: sock.port });
        await sendUntil(
          () => ours.bind.send(enc(`to deno ${host}`), g.from),
          () => sock.got.some((x) => text(x.data) === `to deno ${host}`),
          `LinuxUdpBind -> deno ${host}`,
        );
        const back = sock.got.find((x) => text(x.data) === `to deno ${host}`)!;
        assertEquals(back.from.port, ours.port);
        assertEquals(back.from.address, host);
      }
    } finally {
      await closeBind(ours.bind);
      await s4.close();
      await s6.close();
    }
  },
});

bindTest({
  name: "bind_linux: datagrams of 0 to 65507 bytes arrive whole, both directions, also from a subarray",
  async fn() {
    const ours = await openBind();
    const deno = denoSocket("127.0.0.1");
    const sizes = [0, 1, 31, 1280, 1420, 1500, 9000, 32768, 65507];
    try {
      for (const [k, n] of sizes.entries()) {
        // The payload sits at an odd offset of a larger buffer: the bind must send the view, not its buffer.
        const big = new Uint8Array(n + 7);
        const payload = big.subarray(3, 3 + n);
        payload.set(pattern(n, k));
        const matches = (gs: Got[]) =>
          gs.some((g) => g.data.length === n && assertSame(g.data, pattern(n, k)));
        await sendUntil(
          () => ours.bind.send(payload, { address: "127.0.0.1", port: deno.port }),
          () => matches(deno.got),
          `${n} bytes LinuxUdpBind -> deno`,
        );
        await sendUntil(
          () => deno.conn.send(pattern(n, k), { transport: "udp", hostname: "127.0.0.1", port: ours.port }),
          () => matches(ours.got),
          `${n} bytes deno -> LinuxUdpBind`,
        );
      }
      assertEquals(ours.bind.sendErrors, 0);
      assertEquals(ours.bind.receiveErrors, 0);
    } finally {
      await closeBind(ours.bind);
      await deno.close();
    }
  },
});

function assertSame(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

bindTest({
  name:
    "bind_linux: a burst of 2200 datagrams from six senders arrives complete, sent in GSO trains, read in recvmmsg batches",
  async fn() {
    const PER_SENDER = 500;
    const receiver = new LinuxUdpBind();
    // sender id -> seqs received, and a record of every mismatch (wrong source or content).
    const received = new Map<string, Set<number>>();
    const problems: string[] = [];
    const expectedSource = new Map<string, BindEndpoint>();
    const port = await receiver.open(0, (data, from) => {
      const [id, seqText, fill] = text(data).split("|");
      const want = expectedSource.get(id);
      if (!want || want.address !== from.address || want.port !== from.port) {
        problems.push(`datagram of ${id} from ${from.address}:${from.port}`);
        return;
      }
      if (fill !== id.repeat(20)) problems.push(`content of ${id} #${seqText}`);
      received.get(id)!.add(Number(seqText));
    });
    // Four LinuxUdpBinds (two sending to 127.0.0.1, two to ::1) and two Deno sockets (v4, v6).
    const binds = await Promise.all([openBind(), openBind(), openBind(), openBind()]);
    const socks = [denoSocket("127.0.0.1"), denoSocket("::1")];
    const senders: {
      id: string;
      to: string;
      count: number;
      send: (d: Uint8Array) => void | Promise<unknown>;
    }[] = [];
    binds.forEach((b, i) => {
      const to = i % 2 === 0 ? "127.0.0.1" : "::1";
      const id = `bind${i}`;
      expectedSource.set(id, { address: to, port: b.port });
      senders.push({ id, to, count: PER_SENDER, send: (d) => b.bind.send(d, { address: to, port }) });
    });
    socks.forEach((s, i) => {
      const to = i === 0 ? "127.0.0.1" : "::1";
      const id = `deno${i}`;
      expectedSource.set(id, { address: to, port: s.port });
      senders.push({
        id,
        to,
        count: 100,
        send: (d) => s.conn.send(d, { transport: "udp", hostname: to, port }),
      });
    });
    for (const s of senders) received.set(s.id, new Set());
    const total = senders.reduce((n, s) => n + s.count, 0);
    const count = () => [...received.values()].reduce((n, s) => n + s.size, 0);
    try {
      // Each round sends everything still missing; the first round is the burst. The LinuxUdpBind senders send
      // synchronously, so their datagrams queue up before the receiver runs: it must read them in batches.
      for (let round = 0; round < 50 && count() < total; round++) {
        const sends: (void | Promise<unknown>)[] = [];
        for (const s of senders) {
          const have = received.get(s.id)!;
          for (let seq = 0; seq < s.count; seq++) {
            if (!have.has(seq)) sends.push(s.send(enc(`${s.id}|${seq}|${s.id.repeat(20)}`)));
          }
        }
        await Promise.all(sends);
        for (let step = 0; step < 100 && count() < total; step++) await sleep(20);
      }
      assertEquals(problems, []);
      assertEquals(count(), total, "every datagram of every sender arrived");
      assert(receiver.rxDatagrams >= total, `${receiver.rxDatagrams} datagrams read`);
      assert(
        receiver.rxBatches < receiver.rxBatchedDatagrams,
        `batched receive: ${receiver.rxBatchedDatagrams} datagrams in ${receiver.rxBatches} recvmmsg calls`,
      );
      assert(receiver.rxBatchedDatagrams / receiver.rxBatches <= RECV_BATCH);
      for (const b of binds) {
        assert(
          b.bind.txBatches < b.bind.txDatagrams,
          `batched send: ${b.bind.txDatagrams} datagrams in ${b.bind.txBatches} sendmmsg calls`,
        );
        // Runs of equal-length datagrams to one receiver (seq 100..499 all have three digits) leave as trains.
        assert(b.bind.txGsoDatagrams > 0, `${b.bind.txGsoDatagrams} datagrams in UDP GSO trains`);
      }
    } finally {
      await closeBind(receiver);
      for (const b of binds) await closeBind(b.bind);
      for (const s of socks) await s.close();
    }
  },
});

/** Socket descriptors of this process (inode links in /proc/self/fd). */
function socketFds(): Set<string> {
  const out = new Set<string>();
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    try {
      const link = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
      if (link.startsWith("socket:")) out.add(link);
    } catch { /* closed meanwhile */ }
  }
  return out;
}

bindTest({
  name: "bind_linux: close() ends the receive loop, is idempotent, and sends after it are ignored",
  async fn() {
    const before = socketFds();
    const a = await openBind();
    const opened = [...socketFds()].filter((s) => !before.has(s));
    assertEquals(opened.length, 1, "open() made one socket");
    let ended = false;
    a.bind.closed.then(() => ended = true);
    a.bind.close();
    a.bind.close();
    await a.bind.closed;
    assert(ended);
    assert(!socketFds().has(opened[0]), "the descriptor is closed once `closed` resolves");
    a.bind.send(enc("after close"), { address: "127.0.0.1", port: a.port }); // no throw, no effect
    a.bind.close();
    // The port is free again once closed.
    const again = await openBind(undefined, a.port);
    assertEquals(again.port, a.port);
    await closeBind(again.bind);
    // close() before open(): nothing to wait for, and open() afterwards refuses.
    const never = new LinuxUdpBind();
    never.close();
    await never.closed;
    await assertRejects(() => never.open(0, () => {}), "closed");
  },
});

bindTest({
  name: "bind_linux: an explicit port is bound as asked; a port in use is a clear AddrInUse error",
  async fn() {
    // An explicit free port: start from a random one and step on when something else holds it (bounded).
    let explicit: Awaited<ReturnType<typeof openBind>> | undefined;
    for (let i = 0, p = 20000 + Math.floor(Math.random() * 30000); i < 50 && !explicit; i++, p += 7) {
      try {
        explicit = await openBind(undefined, p);
        assertEquals(explicit.port, p);
      } catch (e) {
        if (!(e instanceof Deno.errors.AddrInUse)) throw e;
      }
    }
    assert(explicit, "found a free port");
    const deno4 = Deno.listenDatagram({ transport: "udp", hostname: "0.0.0.0", port: 0 });
    try {
      // Taken by another LinuxUdpBind.
      const e1 = await assertRejects(() => new LinuxUdpBind().open(explicit!.port, () => {}), "in use");
      assert(e1 instanceof Deno.errors.AddrInUse, e1.name);
      assert(e1.message.includes(`${explicit.port}`), e1.message);
      // Taken on IPv4 by a Deno socket: the dual-stack wildcard socket conflicts with it too.
      const p4 = (deno4.addr as Deno.NetAddr).port;
      const e2 = await assertRejects(() => new LinuxUdpBind().open(p4, () => {}), "in use");
      assert(e2 instanceof Deno.errors.AddrInUse, e2.name);
      await assertRejects(() => new LinuxUdpBind().open(70000, () => {}), "0..65535");
    } finally {
      deno4.close();
      await closeBind(explicit.bind);
    }
  },
});

bindTest({
  name: "bind_linux: a bind on one address family sends within it and counts what it cannot reach",
  async fn() {
    const v4 = await openBind("127.0.0.1"), v6 = await openBind("::1");
    try {
      await sendUntil(
        () => v4.bind.send(enc("v4 only"), { address: "127.0.0.1", port: v4.port }),
        () => v4.got.some((g) => text(g.data) === "v4 only"),
        "127.0.0.1 bind to itself",
      );
      await sendUntil(
        () => v6.bind.send(enc("v6 only"), { address: "::1", port: v6.port }),
        () => v6.got.some((g) => text(g.data) === "v6 only"),
        "::1 bind to itself",
      );
      assertEquals({ ...v6.got.find((g) => text(g.data) === "v6 only")!.from }, {
        address: "::1",
        port: v6.port,
      });
      v4.bind.send(enc("x"), { address: "::1", port: v6.port }); // an IPv4 socket cannot reach IPv6
      v4.bind.send(enc("x"), { address: "not an address", port: 1 });
      v4.bind.send(enc("x"), { address: "127.0.0.1", port: 70000 });
      assertEquals(v4.bind.sendErrors, 3);
    } finally {
      await closeBind(v4.bind);
      await closeBind(v6.bind);
    }
  },
});

bindTest({
  name: "bind_linux: a receiver that throws does not stop the socket",
  async fn() {
    const bind = new LinuxUdpBind();
    const got: string[] = [];
    const port = await bind.open(0, (data) => {
      const t = text(data);
      if (t === "boom") throw new Error("handler bug");
      got.push(t);
    });
    try {
      bind.send(enc("boom"), { address: "127.0.0.1", port });
      await sendUntil(
        () => bind.send(enc("after"), { address: "127.0.0.1", port }),
        () => got.includes("after"),
        "a datagram after a throwing handler",
      );
    } finally {
      await closeBind(bind);
    }
  },
});

Deno.test({
  name: `bind_linux: defaultBind() follows ${UDP_BIND_ENV} (deno, ffi, auto) and rejects other values`,
  fn() {
    const before = Deno.env.get(UDP_BIND_ENV);
    try {
      Deno.env.set(UDP_BIND_ENV, "deno");
      assert(defaultBind() instanceof UdpBind);
      Deno.env.set(UDP_BIND_ENV, "ffi");
      if (unavailable) assertThrows(() => defaultBind(), `${UDP_BIND_ENV}=ffi`);
      else assert(defaultBind() instanceof LinuxUdpBind);
      Deno.env.delete(UDP_BIND_ENV);
      assert(defaultBind() instanceof (unavailable ? UdpBind : LinuxUdpBind));
      Deno.env.set(UDP_BIND_ENV, "kernel");
      assertThrows(() => defaultBind(), `${UDP_BIND_ENV}: expected "deno", "ffi" or "auto", got "kernel"`);
    } finally {
      if (before === undefined) Deno.env.delete(UDP_BIND_ENV);
      else Deno.env.set(UDP_BIND_ENV, before);
    }
  },
});

bindTest({
  name: "bind_linux: an open bind keeps serving after the script ends; after close() the process exits",
  async fn() {
    const url = new URL("../src/wireguard/bind_linux.ts", import.meta.url).href;
    const script = (closeIt: boolean) =>
      `import { LinuxUdpBind } from ${JSON.stringify(url)};
       const b = new LinuxUdpBind();
       const port = await b.open(0, (d) => console.log("got", new TextDecoder().decode(d)));
       console.log("open", port);
       ${closeIt ? "b.close();" : ""}`;
    // Closed: the child must end on its own (a leaked poll would keep it running until the kill below).
    const closed = new Deno.Command(Deno.execPath(), {
      args: ["eval", script(true)],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const killer = setTimeout(() => closed.kill("SIGKILL"), 60_000);
    const out = await closed.output();
    clearTimeout(killer);
    assertEquals(out.code, 0, new TextDecoder().decode(out.stderr));
    assert(text(out.stdout).startsWith("open "), text(out.stdout));
    // Left open: its top-level code has finished, yet the receive loop still answers datagrams.
    const open = new Deno.Command(Deno.execPath(), {
      args: ["eval", script(false)],
      stdout: "piped",
      stderr: "null",
    }).spawn();
    let printed = "";
    const reading = (async () => {
      for await (const chunk of open.stdout) printed += text(chunk);
    })();
    const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
    try {
      await sendUntil(() => {}, () => /^open \d+\n/.test(printed), "the child's port");
      const port = Number(/^open (\d+)/.exec(printed)![1]);
      await sendUntil(
        () => sock.send(enc("still there?"), { transport: "udp", hostname: "127.0.0.1", port }),
        () => printed.includes("got still there?"),
        "a datagram to the child after its script ended",
      );
    } finally {
      sock.close();
      open.kill("SIGKILL");
      await open.status;
      await reading;
    }
  },
});

Deno.test("bind_linux: sockaddr views read and write sockaddr_in/sockaddr_in6 and refuse short structs", () => {
  const buf = new Uint8Array(28);
  const mapped = new Uint8Array(16);
  mapped[10] = mapped[11] = 0xff;
  mapped.set([192, 0, 2, 7], 12);
  assertEquals(SockaddrView.writeV6(buf, mapped, 51820, 3), 28);
  assertEquals([...buf.subarray(0, 4)], [10, 0, 0xca, 0x6c], "AF_INET6 in host order, port in network order");
  const v = new SockaddrView(buf);
  assertEquals(v.family(28), 10);
  assertEquals(v.family(27), 0, "a sockaddr_in6 shorter than 28 bytes is not one");
  assertEquals([sockaddrAddress(v, 10), v.port, v.scopeId], ["192.0.2.7", 51820, 3]);
  const six = new Uint8Array(16);
  six[0] = 0xfd;
  six[1] = 0x77;
  six[15] = 1;
  SockaddrView.writeV6(buf, six, 1);
  assertEquals([sockaddrAddress(v, 10), v.port], ["fd77::1", 1]);
  const four = new Uint8Array(16);
  assertEquals(SockaddrView.writeV4(four, new Uint8Array([127, 0, 0, 1]), 65535), 16);
  const v4 = new SockaddrView(four);
  assertEquals(
    [v4.family(16), v4.family(15), sockaddrAddress(v4, 2), v4.port],
    [2, 0, "127.0.0.1", 65535],
  );
  assertEquals(new SockaddrView(new Uint8Array(1)).family(2), 0, "length beyond the buffer");
});

bindTest({
  name:
    "bind_linux: a datagram the kernel refuses is skipped and the rest of its batch still goes; close() sends",
  async fn() {
    const sender = await openBind("127.0.0.1"), receiver = await openBind("127.0.0.1");
    try {
      // One task, one sendmmsg batch: the middle datagram (port 0) is refused with EINVAL.
      const to = { address: "127.0.0.1", port: receiver.port };
      sender.bind.send(enc("first"), to);
      sender.bind.send(enc("refused"), { address: "127.0.0.1", port: 0 });
      sender.bind.send(enc("third"), to);
      assertEquals(sender.bind.sendErrors, 0, "nothing is sent before the task ends");
      await sendUntil(() => {}, () => receiver.got.length >= 2, "the two good datagrams of the batch");
      assertEquals(receiver.got.map((g) => text(g.data)), ["first", "third"]);
      assertEquals(sender.bind.sendErrors, 1);
      assertEquals(sender.bind.txDatagrams, 2);
      // Staged when close() is called: still sent.
      sender.bind.send(enc("last words"), to);
      await closeBind(sender.bind);
      await sendUntil(() => {}, () => receiver.got.length >= 3, "the datagram staged before close()");
      assertEquals(text(receiver.got[2].data), "last words");
    } finally {
      await closeBind(sender.bind);
      await closeBind(receiver.bind);
    }
  },
});

bindTest({
  name: "bind_linux: two binds on one port and different addresses each use their own socket",
  async fn() {
    const a = await openBind("127.0.0.1");
    const b = await openBind("127.0.0.2", a.port);
    const receiver = denoSocket("127.0.0.1");
    try {
      assertEquals(b.port, a.port);
      const to = { address: "127.0.0.1", port: receiver.port };
      for (const [bind, name] of [[a.bind, "a"], [b.bind, "b"]] as const) {
        await sendUntil(
          () => bind.send(enc(name), to),
          () => receiver.got.some((g) => text(g.data) === name),
          `datagram from ${name}`,
        );
        assert(bind.txBatches > 0, "sent through its libc descriptor, not the Deno fallback");
      }
      assertEquals({ ...receiver.got.find((g) => text(g.data) === "a")!.from }, {
        address: "127.0.0.1",
        port: a.port,
      });
      assertEquals({ ...receiver.got.find((g) => text(g.data) === "b")!.from }, {
        address: "127.0.0.2",
        port: a.port,
      });
    } finally {
      await closeBind(a.bind);
      await closeBind(b.bind);
      await receiver.close();
    }
  },
});
