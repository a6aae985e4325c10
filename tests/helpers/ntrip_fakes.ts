/**
 * Fakes for NTRIP station tests on a ManualClock and a MemoryNet: RTCM3 frames, scripted casters that read a
 * request head and answer as real ones do, and helpers that let in-memory I/O run between clock steps.
 */
import type { StationConfig, StationSide } from "../../src/config/ntrip_stations.ts";
import type { ManualClock } from "../../src/util/clock.ts";
import type { RandomFill } from "../../src/util/random.ts";
import { crc24q } from "../../src/wire/rtcm3.ts";
import type { MemoryConn, MemoryNet } from "./memory_net.ts";

const enc = new TextEncoder();

/** u = 0.5: the jitter factor is exactly 1, so delays are the spec's numbers. */
export const NO_JITTER: RandomFill = (b) => b.fill(0).fill(0x80, 3, 4);

/**
 * A station for in-memory tests: ST1, src.example:2101/SRC (rover:roverpw) -> dst.example:2102/DST (dstpw),
 * NTRIP 1 both ways, no TLS, via auto, GGA every 10 s, RTCM3. `sides` changes fields of the default source
 * and destination; `extra` replaces top-level fields (a `source` or `destination` given there whole).
 */
export function stationConfig(
  extra: Partial<StationConfig> = {},
  sides: { source?: Partial<StationSide>; destination?: Partial<StationSide> } = {},
): StationConfig {
  return {
    id: "ST1",
    enable: true,
    initialDelaySec: 0,
    source: {
      host: "src.example",
      port: 2101,
      mount: "SRC",
      user: "rover",
      password: "roverpw",
      version: 1,
      tls: false,
      via: "auto",
      ...sides.source,
    },
    destination: {
      host: "dst.example",
      port: 2102,
      mount: "DST",
      password: "dstpw",
      version: 1,
      tls: false,
      via: "auto",
      ...sides.destination,
    },
    ggaIntervalSec: 10,
    ggaTalker: "GP",
    format: "rtcm3",
    origin: "test",
    ...extra,
  };
}

/** A CRC-valid RTCM3 frame of `type` with `len` payload bytes (filler `fill`). */
export function rtcmFrame(type: number, len = 8, fill = 0): Uint8Array {
  const f = new Uint8Array(3 + len + 3);
  f[0] = 0xd3;
  f[1] = (len >> 8) & 3;
  f[2] = len & 0xff;
  f[3] = type >> 4;
  f[4] = (type & 15) << 4;
  for (let i = 5; i < 3 + len; i++) f[i] = fill;
  const crc = crc24q(f, 0, 3 + len);
  f[3 + len] = crc >> 16;
  f[4 + len] = (crc >> 8) & 0xff;
  f[5 + len] = crc & 0xff;
  return f;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A scripted caster: records each connection and its request head; `answer` replies to it. */
export class Caster {
  readonly conns: MemoryConn[] = [];
  readonly requests: string[] = [];
  /** What the caster received after the request head, per connection. */
  readonly after: string[] = [];

  constructor(net: MemoryNet, host: string, port: number, answer?: (req: string, c: MemoryConn) => void) {
    net.on(host, port, (c) => {
      const i = this.conns.push(c) - 1;
      this.after[i] = "";
      (async () => {
        const buf = new Uint8Array(4096);
        let text = "";
        let answered = false;
        for (;;) {
          const n = await c.read(buf);
          if (n === null) return;
          text += String.fromCharCode(...buf.subarray(0, n));
          if (!answered) {
            const end = text.indexOf("\r\n\r\n");
            if (end < 0) continue;
            answered = true;
            this.requests[i] = text.slice(0, end + 4);
            this.after[i] = text.slice(end + 4);
            answer?.(this.requests[i], c);
          } else this.after[i] += String.fromCharCode(...buf.subarray(0, n));
        }
      })();
    });
  }

  get last(): MemoryConn {
    return this.conns[this.conns.length - 1];
  }

  send(data: Uint8Array | string, conn = this.last): void {
    conn.write(typeof data === "string" ? enc.encode(data) : data).catch(() => {});
  }
}

/** A caster that answers every request head with `reply` (and then closes the connection when `close`). */
export function answering(net: MemoryNet, host: string, port: number, reply: string, close = false): Caster {
  return new Caster(net, host, port, (_, c) => {
    c.write(enc.encode(reply));
    if (close) c.close();
  });
}

/** Lets every pending promise and in-memory transfer run (no time passes on the ManualClock). */
export async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) await new Promise((r) => setTimeout(r, 0));
}

/** Advances the clock in small steps, settling in between, so timers armed by I/O run in order. */
export async function advance(clock: ManualClock, ms: number, step = 100): Promise<void> {
  let t = 0;
  do {
    clock.advance(Math.min(step, ms - t));
    await settle();
    t += step;
  } while (t < ms);
}
