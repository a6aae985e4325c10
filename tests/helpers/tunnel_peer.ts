/**
 * A test program run inside a namespace: brings a wgedge tunnel up from a wg.conf and acts as one end of a
 * transfer on the userspace stack, printing machine-readable result lines ("RESULT key=value ...").
 *
 *   tunnel_peer.ts CONF dial-send HOST PORT BYTES     connect, send BYTES of a seeded stream, close
 *   tunnel_peer.ts CONF dial-recv HOST PORT           connect, read to EOF, print bytes + sha256
 *   tunnel_peer.ts CONF dial-refused HOST PORT        expect the connect to fail, print the error
 *   tunnel_peer.ts CONF sink PORT REPLY_BYTES         accept one, read to EOF, print sha, then send REPLY_BYTES
 *   tunnel_peer.ts CONF source PORT BYTES             accept one, send BYTES, close
 *   tunnel_peer.ts CONF concurrent HOST PORT N BYTES  N parallel uploads to a `sha256sum` server, each verified
 *   tunnel_peer.ts CONF udp-echo PORT                 UDP echo server on the stack
 *   tunnel_peer.ts CONF udp-ask HOST PORT N           send N datagrams, expect each echoed
 *   tunnel_peer.ts CONF http PORT                     HTTP server (Hono) on the stack
 * It prints "READY" once listening (or connected) and exits when done.
 */
import { createHash } from "node:crypto";
import { Hono } from "hono";
import { loadConfig } from "../../src/config/mod.ts";
import { openTunnel } from "../../src/net/tunnels.ts";
import type { Conn } from "../../src/net/types.ts";
import { writeAll } from "../../src/net/pipe.ts";
import { honoHandler, serveHttp1 } from "../../src/net/http1.ts";
import { seededRandom } from "../../src/util/random.ts";
import { echoWithRetry } from "./udp.ts";

const [confPath, mode, ...rest] = Deno.args;
const { config } = await loadConfig({ env: {}, flags: { config: confPath } });
const tunnel = await openTunnel(config.tunnel!);
const net = tunnel.net;

/**
 * Generous: the dial may have to wait for this fresh process's handshake with wireguard-go, on a CI machine
 * that runs other interop files at the same time. A working path answers in milliseconds anyway.
 */
const DIAL_TIMEOUT_MS = 60_000;

function say(line: string) {
  console.log(line);
}

/** Like SO_LINGER for a process about to exit: wait (bounded) until the stack has sent everything. */
async function drain(conn: Conn): Promise<void> {
  const c = conn as Conn & { bufferedBytes?: { send: number }; isClosed?: boolean };
  for (let i = 0; i < 3000 && (c.bufferedBytes?.send ?? 0) > 0 && !c.isClosed; i++) { // <= 60 s
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A deterministic stream so both ends can agree on its hash without sharing a file. */
async function sendStream(conn: Conn, bytes: number, seed = 1): Promise<string> {
  const rnd = seededRandom(seed);
  const h = createHash("sha256");
  const chunk = new Uint8Array(64 * 1024);
  for (let left = bytes; left > 0;) {
    const n = Math.min(left, chunk.length);
    const part = rnd(chunk.subarray(0, n));
    h.update(part);
    await writeAll(conn, part);
    left -= n;
  }
  return h.digest("hex");
}

async function readAll(conn: Conn, dumpTo?: string): Promise<{ bytes: number; sha: string }> {
  const h = createHash("sha256");
  const dump = dumpTo ? await Deno.open(dumpTo, { write: true, create: true, truncate: true }) : undefined;
  const buf = new Uint8Array(64 * 1024);
  let bytes = 0;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
    if (dump) await dump.write(buf.slice(0, n));
    bytes += n;
  }
  dump?.close();
  return { bytes, sha: h.digest("hex") };
}

async function readText(conn: Conn): Promise<string> {
  const buf = new Uint8Array(4096);
  let text = "";
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return text;
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
}

try {
  switch (mode) {
    case "dial-send": {
      const conn = await net.dialTcp(rest[0], Number(rest[1]), { timeoutMs: DIAL_TIMEOUT_MS });
      say("READY");
      const sha = await sendStream(conn, Number(rest[2]));
      await conn.closeWrite();
      await readAll(conn); // wait for the peer's FIN so every byte is acknowledged
      conn.close();
      say(`RESULT bytes=${rest[2]} sha=${sha}`);
      break;
    }
    case "dial-recv": {
      const conn = await net.dialTcp(rest[0], Number(rest[1]), { timeoutMs: DIAL_TIMEOUT_MS });
      say("READY");
      const r = await readAll(conn, rest[2]);
      conn.close();
      say(`RESULT bytes=${r.bytes} sha=${r.sha}`);
      break;
    }
    case "dial-refused": {
      try {
        const c = await net.dialTcp(rest[0], Number(rest[1]), { timeoutMs: DIAL_TIMEOUT_MS });
        c.close();
        say("RESULT connected");
      } catch (e) {
        say(`RESULT error=${(e as Error).message}`);
      }
      break;
    }
    case "sink": {
      const listener = net.listenTcp({ port: Number(rest[0]) });
      say("READY");
      const conn = await listener.accept();
      const r = await readAll(conn);
      say(`RESULT bytes=${r.bytes} sha=${r.sha}`);
      const replySha = await sendStream(conn, Number(rest[1]), 2);
      await conn.closeWrite();
      await readAll(conn);
      conn.close();
      await drain(conn);
      say(`REPLY bytes=${rest[1]} sha=${replySha}`);
      listener.close();
      break;
    }
    case "source": {
      const listener = net.listenTcp({ port: Number(rest[0]) });
      say("READY");
      const conn = await listener.accept();
      const sha = await sendStream(conn, Number(rest[1]));
      await conn.closeWrite();
      await readAll(conn);
      conn.close();
      await drain(conn);
      listener.close();
      say(`RESULT bytes=${rest[1]} sha=${sha}`);
      break;
    }
    case "concurrent": {
      // Each connection moves BYTES to a kernel server that answers with `sha256sum` of what it received.
      const [host, port, n, bytes] = [rest[0], Number(rest[1]), Number(rest[2]), Number(rest[3])];
      say("READY");
      const results = await Promise.all(Array.from({ length: n }, async (_, i) => {
        const conn = await net.dialTcp(host, port, { timeoutMs: 30_000 }).catch((e) => {
          console.error(`connection ${i}: ${(e as Error).message}`);
          return undefined;
        });
        if (!conn) return false;
        const sent = await sendStream(conn, bytes, 100 + i);
        await conn.closeWrite();
        const reply = await readText(conn);
        conn.close();
        const ok = reply.startsWith(sent);
        if (!ok) console.error(`connection ${i}: kernel hashed ${reply.trim()}, sent ${sent}`);
        return ok;
      }));
      say(`RESULT ok=${results.filter(Boolean).length} of=${n}`);
      break;
    }
    case "udp-echo": {
      const sock = net.listenUdp({ port: Number(rest[0]) });
      say("READY");
      for (;;) {
        const [data, from] = await sock.receive();
        await sock.send(data, from);
      }
    }
    case "udp-ask": {
      const sock = net.listenUdp({ port: 0 });
      say("READY");
      const to = { transport: "udp" as const, hostname: rest[0], port: Number(rest[1]) };
      let ok = 0, sends = 0;
      for (let i = 0; i < Number(rest[2]); i++) {
        sends += await echoWithRetry(sock, to, `datagram ${i}`); // up to 30 sends over ~55 s
        ok++;
      }
      say(`RESULT ok=${ok} sends=${sends}`);
      sock.close();
      break;
    }
    case "http": {
      const app = new Hono<{ Bindings: { remoteAddr: { hostname: string } } }>();
      app.get("/", (c) => c.text(`hello from the wgedge stack, you are ${c.env.remoteAddr.hostname}\n`));
      serveHttp1(net.listenTcp({ port: Number(rest[0]) }), honoHandler(app));
      say("READY");
      await new Promise(() => {});
      break;
    }
    default:
      throw new Error(`unknown mode ${mode}`);
  }
} finally {
  tunnel.close();
}
Deno.exit(0);
