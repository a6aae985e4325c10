/** WARP reserved bytes on an in-memory network: written on every message type sent, accepted on receive. */
import { assertEquals } from "./helpers/assert.ts";
import { type BindEndpoint, MemoryBind, MemoryNetwork } from "../src/wireguard/bind.ts";
import { ManualClock } from "../src/util/clock.ts";
import { assertReservedOnWire, exchangeEveryType, reservedPair } from "./helpers/reserved_pair.ts";
import { flush } from "./helpers/wgpair.ts";
import {
  MESSAGE_INITIATION,
  messageType,
  messageTypeAnyReserved,
  withZeroReserved,
  writeReserved,
} from "../src/wire/wireguard.ts";

/**
 * A MemoryBind that copies what it is given before send() returns, as the batched Linux bind stages a copy:
 * the device then seals transport messages into one reused scratch buffer.
 */
class CopyingBind extends MemoryBind {
  readonly copiesOnSend = true;
  override send(data: Uint8Array, to: BindEndpoint): void {
    super.send(data.slice(), to);
  }
}

for (const copying of [false, true]) {
  const how = copying ? " (messages sealed into the scratch of a copying bind)" : "";
  Deno.test(`reserved: a peer with Reserved = 1,2,3 gets them in every message type; the other side accepts${how}`, async () => {
    const net = new MemoryNetwork();
    const clock = new ManualClock();
    const bind = () => copying ? new CopyingBind(net, "192.0.2.2") : net.bind("192.0.2.2");
    const p = reservedPair({
      aPort: 51001,
      bPort: 51002,
      host: "192.0.2.2",
      aOpts: { clock, bind: bind() },
      bOpts: { clock, bind: bind() },
    });
    const fromA: Uint8Array[] = [], fromB: Uint8Array[] = [];
    net.onSend = (d, from) => (from.port === 51001 ? fromA : fromB).push(d.slice());
    await p.a.start();
    await p.b.start();
    try {
      await exchangeEveryType(p, async (cond, what) => {
        for (let i = 0; i < 50 && !cond(); i++) await flush();
        if (!cond()) throw new Error(`not reached: ${what}`);
      });
      assertReservedOnWire(fromA, fromB);
      assertEquals(p.a.sealScratch() !== undefined, copying);
    } finally {
      p.a.close();
      p.b.close();
    }
  });
}

Deno.test("reserved: wire helpers keep the strict check and zero a copy for the MACs", () => {
  const m = new Uint8Array(148);
  m[0] = MESSAGE_INITIATION;
  writeReserved(m, Uint8Array.of(9, 8, 7));
  assertEquals(messageType(m), 0, "the strict check (mwgp, obfs) still wants zeros");
  assertEquals(messageTypeAnyReserved(m), MESSAGE_INITIATION);
  const z = withZeroReserved(m);
  assertEquals([z[1], z[2], z[3]], [0, 0, 0]);
  assertEquals([m[1], m[2], m[3]], [9, 8, 7], "the received buffer is not changed");
  assertEquals(messageTypeAnyReserved(m.subarray(0, 147)), 0, "sizes are still checked");
});
