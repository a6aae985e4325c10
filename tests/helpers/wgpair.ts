/** Two in-process WireGuard devices on a MemoryNetwork, driven by a ManualClock (no sleeping). */
import { Device, type DeviceOptions } from "../../src/wireguard/device.ts";
import { type MemoryBind, MemoryNetwork } from "../../src/wireguard/bind.ts";
import { generatePrivateKey, publicKey } from "../../src/crypto/x25519.ts";
import { ManualClock } from "../../src/util/clock.ts";
import { seededRandom } from "../../src/util/random.ts";

export async function flush(rounds = 20): Promise<void> {
  for (let i = 0; i < rounds; i++) await Promise.resolve();
}

/** A minimal IPv4 packet (header + payload) from src to dst, enough for cryptokey routing. */
export function ipv4Packet(src: string, dst: string, payload: Uint8Array = new Uint8Array(8)): Uint8Array {
  const p = new Uint8Array(20 + payload.length);
  p[0] = 0x45;
  p[2] = p.length >> 8;
  p[3] = p.length & 0xff;
  p[8] = 64;
  p[9] = 17;
  p.set(src.split(".").map(Number), 12);
  p.set(dst.split(".").map(Number), 16);
  p.set(payload, 20);
  return p;
}

/** Advances a ManualClock in steps, letting in-flight datagrams (microtasks) land between steps. */
export async function advance(clock: ManualClock, ms: number, stepMs = 50): Promise<void> {
  for (let left = ms; left > 0; left -= stepMs) {
    clock.advance(Math.min(stepMs, left));
    await flush();
  }
}

export interface Pair {
  net: MemoryNetwork;
  clock: ManualClock;
  a: Device;
  b: Device;
  aBind: MemoryBind;
  bBind: MemoryBind;
  aGot: Uint8Array[];
  bGot: Uint8Array[];
  close(): void;
}

/** a (10.0.0.1) initiates toward b (10.0.0.2) at 192.0.2.2:51820. */
export async function makePair(opts: {
  psk?: Uint8Array;
  aOpts?: Partial<DeviceOptions>;
  bOpts?: Partial<DeviceOptions>;
  aKeepalive?: number;
  bKnowsAWrongKey?: boolean;
  seed?: number;
} = {}): Promise<Pair> {
  const clock = new ManualClock();
  const net = new MemoryNetwork();
  const random = seededRandom(opts.seed ?? 1);
  const aPriv = generatePrivateKey(random), bPriv = generatePrivateKey(random);
  const aBind = net.bind("192.0.2.1"), bBind = net.bind("192.0.2.2");
  const aPubForB = opts.bKnowsAWrongKey ? publicKey(generatePrivateKey(random)) : publicKey(aPriv);
  const a = new Device({
    privateKey: aPriv,
    clock,
    random,
    bind: aBind,
    peers: [{
      publicKey: publicKey(bPriv),
      presharedKey: opts.psk,
      allowedIps: [{ address: "10.0.0.2", prefix: 32 }],
      endpoint: { host: "192.0.2.2", port: 51820 },
      persistentKeepalive: opts.aKeepalive,
    }],
    ...opts.aOpts,
  });
  const b = new Device({
    privateKey: bPriv,
    listenPort: 51820,
    clock,
    random,
    bind: bBind,
    peers: [{
      publicKey: aPubForB,
      presharedKey: opts.psk,
      allowedIps: [{ address: "10.0.0.1", prefix: 32 }],
    }],
    ...opts.bOpts,
  });
  const aGot: Uint8Array[] = [], bGot: Uint8Array[] = [];
  a.setReceiver((p) => aGot.push(p.slice()));
  b.setReceiver((p) => bGot.push(p.slice()));
  await b.start();
  await a.start();
  return {
    net,
    clock,
    a,
    b,
    aBind,
    bBind,
    aGot,
    bGot,
    close() {
      a.close();
      b.close();
    },
  };
}
