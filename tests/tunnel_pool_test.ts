/**
 * The tunnel pool (src/services/tunnel/pool.ts): one device per normalized configuration, shared and
 * reference-counted, closed by the last release, with seed 000's log lines. Real userspace tunnels on
 * loopback (their endpoint is the discard port of 127.0.0.1, so nothing answers and nothing leaves the host).
 */
import { assert, assertEquals, assertRejects } from "./helpers/assert.ts";
import { parsePipeForm } from "../src/config/pipe.ts";
import { parseWgQuick } from "../src/config/wgquick.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { defaultTunnelOpener, type TunnelOpener, TunnelPool } from "../src/services/tunnel/pool.ts";
import type { Tunnel } from "../src/net/tunnels.ts";
import { configureLogging, type LogLevel } from "../src/util/log.ts";

function keys() {
  const sk = generatePrivateKey();
  return { priv: encodeKey(sk), pub: encodeKey(publicKey(generatePrivateKey())) };
}

/** The pipe form and the same tunnel written as wg-quick INI (other spelling, key case and comments). */
function sameTunnelTwoWays() {
  const k = keys();
  const pipe = parsePipeForm(`${k.priv}|${k.pub}|127.0.0.1:9|10.5.0.2`, "STATION_A");
  const ini = parseWgQuick(
    `# the same tunnel as a wg-quick file
[Interface]
privatekey = ${k.priv}
Address = 10.5.0.2/32
[Peer]
PublicKey = ${k.pub}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = 127.0.0.1:9
PersistentKeepalive = 25
`,
    "WG_TUNNEL_A",
  );
  return { pipe, ini };
}

/** Counts devices opened and closed by the pool. */
function countingOpener(delayMs = 0) {
  const counts = { opened: 0, closed: 0 };
  const open: TunnelOpener = async (cfg, opts) => {
    counts.opened++;
    if (delayMs) await new Promise((r) => setTimeout(r, delayMs));
    const t = await defaultTunnelOpener(cfg, opts);
    const tunnel: Tunnel = {
      ...t,
      close() {
        counts.closed++;
        t.close();
      },
    };
    return tunnel;
  };
  return { counts, open };
}

function captureLog(): { lines: string[]; restore(): void } {
  const lines: string[] = [];
  configureLogging({ sink: { write: (line: string, _l: LogLevel) => lines.push(line) }, json: false });
  return {
    lines,
    restore: () =>
      configureLogging({
        sink: {
          write(line) {
            Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
          },
        },
      }),
  };
}

Deno.test("pool: the pipe form and the equivalent INI share one tunnel; refs count; the last release closes it", async () => {
  const { pipe, ini } = sameTunnelTwoWays();
  const { counts, open } = countingOpener();
  const pool = new TunnelPool({ open });
  const log = captureLog();
  try {
    const a = await pool.acquire(pipe, { name: "a", user: "station A" });
    const b = await pool.acquire(ini, { name: "a", user: "relay RELAY_1" });
    assertEquals(counts.opened, 1, "one device for one normalized configuration");
    assert(a.tunnel === b.tunnel, "both leases hold the same tunnel");
    assertEquals(a.key, b.key);
    assertEquals(pool.list().map((t) => [t.name, t.refs, t.users]), [["a", 2, [
      "station A",
      "relay RELAY_1",
    ]]]);

    a.release();
    a.release(); // idempotent: a second release of the same lease changes nothing
    assertEquals(pool.list()[0].refs, 1);
    assertEquals(counts.closed, 0, "still held by the relay");
    b.release();
    assertEquals(counts.closed, 1, "closed at zero references");
    assertEquals(pool.size, 0);

    const text = log.lines.join("\n");
    for (
      const line of [
        "tunnel up",
        "reusing cached tunnel",
        "refs=2",
        "released tunnel",
        "refs=1",
        "closing tunnel (zero refs)",
      ]
    ) {
      assert(text.includes(line), `log has "${line}":\n${text}`);
    }
    assert(
      text.includes("address=10.5.0.2 endpoint=127.0.0.1:9"),
      `tunnel up names address -> endpoint:\n${text}`,
    );
    assert(!text.includes(encodeKey(pipe.iface.privateKey)), "no private key in the log");
  } finally {
    log.restore();
    pool.closeAll();
  }
});

Deno.test("pool: different configurations get different devices", async () => {
  const { counts, open } = countingOpener();
  const pool = new TunnelPool({ open });
  try {
    const one = sameTunnelTwoWays().pipe, two = sameTunnelTwoWays().pipe;
    const a = await pool.acquire(one, { name: "one", user: "t" });
    const b = await pool.acquire(two, { name: "two", user: "t" });
    assertEquals(counts.opened, 2);
    assert(a.tunnel !== b.tunnel);
    assertEquals(pool.list().map((t) => t.name), ["one", "two"]);
    // The same configuration with other stack options (TCP keepalive) is another tunnel.
    const c = await pool.acquire(one, { name: "one", user: "t" }, { keepAliveIdleMs: 10_000 });
    assertEquals(counts.opened, 3);
    assert(c.key !== a.key);
  } finally {
    pool.closeAll();
  }
});

Deno.test("pool: concurrent acquires of a configuration that is still opening open one device", async () => {
  const { counts, open } = countingOpener(50);
  const pool = new TunnelPool({ open });
  try {
    const { pipe, ini } = sameTunnelTwoWays();
    const leases = await Promise.all([
      pool.acquire(pipe, { name: "s", user: "1" }),
      pool.acquire(ini, { name: "s", user: "2" }),
      pool.acquire(pipe, { name: "s", user: "3" }),
    ]);
    assertEquals(counts.opened, 1);
    assert(leases.every((l) => l.tunnel === leases[0].tunnel));
    assertEquals(pool.list()[0].refs, 3);
    for (const l of leases) l.release();
    assertEquals(counts.closed, 1);
  } finally {
    pool.closeAll();
  }
});

Deno.test("pool: a tunnel that cannot come up holds no reference, and the next acquire tries again", async () => {
  const { pipe } = sameTunnelTwoWays();
  // A ListenPort already taken on every address: the device cannot bind.
  const busy = Deno.listenDatagram({ hostname: "0.0.0.0", port: 0, transport: "udp" });
  const cfg = { ...pipe, iface: { ...pipe.iface, listenPort: (busy.addr as Deno.NetAddr).port } };
  const { counts, open } = countingOpener();
  const pool = new TunnelPool({ open });
  try {
    await assertRejects(() => pool.acquire(cfg, { name: "x", user: "1" }));
    assertEquals(pool.size, 0, "nothing left in the pool");
    busy.close();
    const lease = await pool.acquire(cfg, { name: "x", user: "2" });
    assertEquals(counts.opened, 2, "tried again");
    assertEquals(pool.list()[0].refs, 1);
    lease.release();
    assertEquals(pool.size, 0);
  } finally {
    try {
      busy.close();
    } catch { /* closed above */ }
    pool.closeAll();
  }
});

Deno.test("pool: a lease released while another acquire waits does not close the shared tunnel", async () => {
  const { counts, open } = countingOpener(30);
  const pool = new TunnelPool({ open });
  try {
    const { pipe } = sameTunnelTwoWays();
    const first = await pool.acquire(pipe, { name: "p", user: "1" });
    const second = pool.acquire(pipe, { name: "p", user: "2" });
    first.release();
    const lease = await second;
    assertEquals(counts.closed, 0);
    assertEquals(pool.list()[0].refs, 1);
    lease.release();
    assertEquals(counts.closed, 1);
  } finally {
    pool.closeAll();
  }
});
