/** Kernel TCP helpers for tests: an echo server and a bounded request/answer on a connection. */
import { within } from "./wait.ts";

export const TCP_WAIT_MS = 30_000;

export { within };

/** A TCP echo server on 127.0.0.1 (an ephemeral port); `close()` also closes the live connections. */
export function tcpEcho(): { port: number; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const c of listener) {
      conns.add(c);
      c.readable.pipeTo(c.writable).catch(() => {}).finally(() => conns.delete(c));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed by the pipe */ }
      }
    },
  };
}

/** Writes `text` and reads until as many bytes came back (bounded); resolves what came back. */
export async function ask(conn: Deno.Conn, text: string): Promise<string> {
  const want = new TextEncoder().encode(text);
  await within(conn.write(want), `write ${text}`);
  const got = new Uint8Array(want.length);
  let n = 0;
  while (n < want.length) {
    const r = await within(conn.read(got.subarray(n)), `answer to ${text}`);
    if (r === null) break;
    n += r;
  }
  return new TextDecoder().decode(got.subarray(0, n));
}

/** Connects to 127.0.0.1:port (bounded). */
export function connect(port: number): Promise<Deno.Conn> {
  return within(Deno.connect({ hostname: "127.0.0.1", port }), `connect to ${port}`);
}
