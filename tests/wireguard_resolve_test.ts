/**
 * A peer endpoint given as a name that does not resolve at start: one WARN per attempt naming the next one,
 * retries 5 s, 10 s, ... (not silence until the 5-minute re-resolve), "no endpoint for peer" at WARN once per
 * retry however many packets wait, the state in the peer's status, and traffic flowing once the name
 * resolves. ManualClock and a fake resolver; two in-process devices on a MemoryNetwork.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { advance, flush, ipv4Packet } from "./helpers/wgpair.ts";
import { Device, RESOLVE_RETRY_FIRST_MS } from "../src/wireguard/device.ts";
import { MemoryNetwork } from "../src/wireguard/bind.ts";
import { generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import { configureLogging } from "../src/util/log.ts";

const A = "10.0.0.1", B = "10.0.0.2";

Deno.test("device: an endpoint name that does not resolve is retried with backoff, warned once per retry, in status", async () => {
  const lines: string[] = [];
  configureLogging({ level: "info", json: false, sink: { write: (line) => lines.push(line) } });
  const clock = new ManualClock();
  const net = new MemoryNetwork();
  const random = seededRandom(7);
  const aPriv = generatePrivateKey(random), bPriv = generatePrivateKey(random);
  let zone: string[] | undefined;
  const asked: number[] = [];
  const a = new Device({
    name: "resolvetest",
    privateKey: aPriv,
    clock,
    random,
    bind: net.bind("192.0.2.1"),
    resolve: (host) => {
      asked.push(clock.now());
      assertEquals(host, "vpn.test");
      return zone ? Promise.resolve(zone) : Promise.reject(new Error("queryA ENOTFOUND vpn.test"));
    },
    peers: [{
      publicKey: publicKey(bPriv),
      allowedIps: [{ address: B, prefix: 32 }],
      endpoint: { host: "vpn.test", port: 51820 },
    }],
  });
  const b = new Device({
    privateKey: bPriv,
    listenPort: 51820,
    clock,
    random,
    bind: net.bind("192.0.2.2"),
    peers: [{ publicKey: publicKey(aPriv), allowedIps: [{ address: A, prefix: 32 }] }],
  });
  const bGot: Uint8Array[] = [];
  b.setReceiver((p) => bGot.push(p.slice()));
  const warns = (what: string) => lines.filter((l) => l.includes("WARN") && l.includes(what));
  try {
    await b.start();
    const t0 = clock.now(), wall0 = clock.wallMs();
    await a.start();

    // At start: one WARN with the next attempt 5 s later, and the status says so.
    assertEquals(warns("cannot resolve peer endpoint").length, 1, lines.join("\n"));
    const retryAt = new Date(wall0 + RESOLVE_RETRY_FIRST_MS).toISOString();
    assert(warns("cannot resolve peer endpoint")[0].includes(`retryAt=${retryAt}`), lines.join("\n"));
    const status = () => a.status().peers[0];
    assertEquals(status().endpoint, null);
    assertEquals(status().resolution, {
      name: "vpn.test:51820",
      error: "queryA ENOTFOUND vpn.test",
      failures: 1,
      lastResolved: null,
      nextAttempt: retryAt,
    });

    // Packets waiting for the peer: "no endpoint" once at WARN, not once per packet.
    for (let i = 0; i < 10; i++) a.send(ipv4Packet(A, B));
    await flush();
    assertEquals(warns("no endpoint for peer").length, 1);
    assert(warns("no endpoint for peer")[0].includes("endpoint=vpn.test:51820"), lines.join("\n"));

    // Second attempt 5 s later fails too: the next one is 10 s later; one more WARN of each kind.
    await advance(clock, RESOLVE_RETRY_FIRST_MS);
    assertEquals(asked.map((t) => t - t0), [0, RESOLVE_RETRY_FIRST_MS]);
    assertEquals(warns("cannot resolve peer endpoint").length, 2);
    assertEquals(status().resolution?.failures, 2);
    for (let i = 0; i < 10; i++) a.send(ipv4Packet(A, B));
    await flush();
    assertEquals(warns("no endpoint for peer").length, 2);

    // The name appears: the third attempt (10 s later) resolves it; the next run is the 5-minute re-resolve.
    zone = ["192.0.2.2"];
    await advance(clock, 2 * RESOLVE_RETRY_FIRST_MS);
    assertEquals(asked.map((t) => t - t0), [0, RESOLVE_RETRY_FIRST_MS, 3 * RESOLVE_RETRY_FIRST_MS]);
    assertEquals(status().endpoint, "192.0.2.2:51820");
    assertEquals(status().resolution?.error, null);
    assertEquals(status().resolution?.failures, 0);
    assertEquals(status().resolution?.nextAttempt, new Date(clock.wallMs() + 300_000).toISOString());
    assertEquals(warns("cannot resolve peer endpoint").length, 2);

    // And traffic flows: the 20 packets that waited, then a new one.
    a.send(ipv4Packet(A, B, new Uint8Array([42])));
    await advance(clock, 100);
    assertEquals(bGot.length, 21);
    assertEquals(bGot[20], ipv4Packet(A, B, new Uint8Array([42])));
  } finally {
    a.close();
    b.close();
    configureLogging({ level: "error", sink: { write: (line) => console.error(line) } });
  }
});
