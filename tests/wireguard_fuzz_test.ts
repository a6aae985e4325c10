import { assert, assertEquals } from "./helpers/assert.ts";
import { flush, ipv4Packet, makePair } from "./helpers/wgpair.ts";
import { seededRandom } from "../src/util/random.ts";
import type { Device } from "../src/wireguard/device.ts";

function accounted(d: Device): number {
  return d.stats.rxAccepted + Object.values(d.stats.dropped).reduce((a, b) => a + b, 0);
}

Deno.test("fuzz: 100 000 random and mutated datagrams never throw, are all counted, and traffic still flows", async () => {
  const p = await makePair({ seed: 7 });
  try {
    const captured: Uint8Array[] = [];
    p.net.onSend = (d) => captured.push(d.slice());
    p.a.send(ipv4Packet("10.0.0.1", "10.0.0.2", new Uint8Array(100)));
    await flush();
    p.b.send(ipv4Packet("10.0.0.2", "10.0.0.1", new Uint8Array(1300)));
    await flush();
    assert(captured.length >= 4, "captured handshake and transport messages");
    p.net.onSend = undefined;

    const rnd = seededRandom(1234);
    const byte = () => rnd(new Uint8Array(1))[0];
    const from = { address: "203.0.113.9", port: 4000 };
    const targets = [p.a, p.b];
    for (let i = 0; i < 100_000; i++) {
      let d: Uint8Array;
      const kind = i % 4;
      if (kind === 0) {
        d = rnd(new Uint8Array(byte() * 6 % 1500)); // pure noise, any size
      } else {
        d = captured[i % captured.length].slice();
        if (kind === 1) {
          for (let f = 0; f <= byte() % 4; f++) d[(byte() << 8 | byte()) % d.length] ^= 1 << (byte() % 8);
        } else if (kind === 2) {
          d = d.subarray(0, (byte() << 8 | byte()) % (d.length + 1));
        } else {
          d[0] = byte() % 6; // valid-looking type over the wrong body
          if (byte() % 2) d[1] = byte();
        }
      }
      targets[i % 2].receiveDatagram(d, from);
    }
    await flush();
    for (const d of targets) {
      assertEquals(accounted(d), d.stats.rxDatagrams, "every datagram counted as accepted or dropped");
      assert(d.stats.dropped.malformed > 10_000, "noise counted as malformed");
    }
    assert(p.b.stats.dropped.mac1 > 1000, "mutated handshakes fail mac1 before any DH");
    // The tunnel survived the storm: fresh data still crosses both ways.
    const aBefore = p.aGot.length, bBefore = p.bGot.length;
    p.a.send(ipv4Packet("10.0.0.1", "10.0.0.2", new Uint8Array([1])));
    p.b.send(ipv4Packet("10.0.0.2", "10.0.0.1", new Uint8Array([2])));
    await flush();
    assertEquals(p.bGot.length, bBefore + 1);
    assertEquals(p.aGot.length, aBefore + 1);
  } finally {
    p.close();
  }
});
