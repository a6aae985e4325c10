/**
 * The soak run's traffic (scripts/soak.ts starts it inside its namespaces):
 *
 *   load.ts echo --tcp PORT[,PORT...] --udp PORT[,PORT...]
 *       TCP and UDP echo servers on all addresses (the relays' and the tunnels' targets).
 *   load.ts churn --tcp NAME=PORT[-LAST][,...] --udp NAME=PORT[,...] [--pause-ms 100]
 *       For every target, one loop that keeps opening a connection (a random port of a range), exchanging
 *       1-3 random messages of 1 B-16 KiB that must come back byte-exact, holding it 0-2 s and closing it; for
 *       UDP a new socket (a new flow in the relay) sending 3 datagrams that must all be echoed. Every
 *       operation is bounded (10 s). Prints one JSON line every 10 s: {"ok": {NAME: n}, "fail": {NAME: n},
 *       "lastError": {NAME: "..."}} (counts since the previous line).
 */

const OP_TIMEOUT_MS = 10_000;
const REPORT_MS = 10_000;

function ports(list: string | undefined): number[] {
  return (list ?? "").split(",").filter(Boolean).map(Number);
}

function arg(name: string): string | undefined {
  const i = Deno.args.indexOf(`--${name}`);
  return i >= 0 ? Deno.args[i + 1] : undefined;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Rejects after ms; the timer is cleared either way. */
async function bounded<T>(p: Promise<T>, what: string, ms = OP_TIMEOUT_MS): Promise<T> {
  let t: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, rej) => t = setTimeout(() => rej(new Error(what)), ms)),
    ]);
  } finally {
    clearTimeout(t);
  }
}

function echo(): void {
  for (const port of ports(arg("tcp"))) {
    const l = Deno.listen({ hostname: "0.0.0.0", port });
    (async () => {
      for await (const c of l) {
        c.readable.pipeTo(c.writable).catch(() => {});
      }
    })();
  }
  for (const port of ports(arg("udp"))) {
    const u = Deno.listenDatagram({ hostname: "0.0.0.0", port, transport: "udp" });
    (async () => {
      for (;;) {
        const [d, from] = await u.receive();
        await u.send(d, from).catch(() => {});
      }
    })();
  }
  console.log(JSON.stringify({ ready: true }));
}

const ok = new Map<string, number>();
const fail = new Map<string, number>();
const lastError = new Map<string, string>();
const count = (m: Map<string, number>, k: string) => m.set(k, (m.get(k) ?? 0) + 1);

async function readExactly(c: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let got = 0;
  while (got < n) {
    const r = await c.read(out.subarray(got));
    if (r === null) throw new Error(`EOF after ${got} of ${n} bytes`);
    got += r;
  }
  return out;
}

async function tcpOnce(port: number): Promise<void> {
  const c = await bounded(Deno.connect({ hostname: "127.0.0.1", port }), "connect timeout");
  try {
    const rounds = 1 + Math.floor(Math.random() * 3);
    for (let i = 0; i < rounds; i++) {
      const msg = crypto.getRandomValues(new Uint8Array(1 + Math.floor(Math.random() * 16384)));
      await bounded(
        (async () => {
          let off = 0;
          while (off < msg.length) off += await c.write(msg.subarray(off));
          const back = await readExactly(c, msg.length);
          if (!back.every((b, j) => b === msg[j])) throw new Error("echo differs");
        })(),
        "echo timeout",
      );
    }
    await sleep(Math.random() * 2000);
  } finally {
    try {
      c.close();
    } catch { /* closed */ }
  }
}

async function udpOnce(port: number): Promise<void> {
  const u = Deno.listenDatagram({ hostname: "127.0.0.1", port: 0, transport: "udp" });
  try {
    for (let i = 0; i < 3; i++) {
      const msg = crypto.getRandomValues(new Uint8Array(16 + Math.floor(Math.random() * 1000)));
      await u.send(msg, { transport: "udp", hostname: "127.0.0.1", port });
      const [back] = await bounded(u.receive(), "no UDP echo", 3000);
      if (back.length !== msg.length || !back.every((b, j) => b === msg[j])) throw new Error("echo differs");
    }
  } finally {
    u.close();
  }
}

async function loop(name: string, op: () => Promise<void>, pauseMs: number): Promise<never> {
  for (;;) {
    try {
      await op();
      count(ok, name);
    } catch (e) {
      count(fail, name);
      lastError.set(name, (e as Error).message.slice(0, 160));
    }
    await sleep(pauseMs * (0.5 + Math.random()));
  }
}

function churn(): void {
  const pause = Number(arg("pause-ms") ?? 100);
  for (const t of (arg("tcp") ?? "").split(",").filter(Boolean)) {
    const [name, range] = t.split("=");
    const [first, last] = range.split("-").map(Number);
    loop(name, () => tcpOnce(first + Math.floor(Math.random() * ((last ?? first) - first + 1))), pause);
  }
  for (const t of (arg("udp") ?? "").split(",").filter(Boolean)) {
    const [name, port] = t.split("=");
    loop(name, () => udpOnce(Number(port)), pause);
  }
  setInterval(() => {
    console.log(JSON.stringify({
      ok: Object.fromEntries(ok),
      fail: Object.fromEntries(fail),
      lastError: Object.fromEntries(lastError),
    }));
    ok.clear();
    fail.clear();
    lastError.clear();
  }, REPORT_MS);
}

if (Deno.args[0] === "echo") echo();
else if (Deno.args[0] === "churn") churn();
else {
  console.error("usage: load.ts echo --tcp P,... --udp P,... | churn --tcp NAME=P[-L],... --udp NAME=P,...");
  Deno.exit(2);
}
