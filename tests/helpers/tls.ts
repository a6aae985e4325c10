/**
 * Throwaway TLS material for tests: a self-signed P-256 certificate made by `openssl req -x509` in a temp
 * directory (valid one day), and a TLS echo server on 127.0.0.1 (Deno.listenTls) with it.
 */

export interface TestCert {
  dir: string;
  certFile: string;
  keyFile: string;
  cert: string;
  key: string;
  remove(): Promise<void>;
}

/** A self-signed certificate for `cn` with the given subjectAltName entries (`DNS:x`, `IP:y`). */
export async function makeCert(
  cn = "localhost",
  sans = ["DNS:localhost", "IP:127.0.0.1"],
): Promise<TestCert> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-tls-" });
  const certFile = `${dir}/cert.pem`;
  const keyFile = `${dir}/key.pem`;
  const out = await new Deno.Command("openssl", {
    args: [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:P-256",
      "-nodes",
      "-days",
      "1",
      "-subj",
      `/CN=${cn}`,
      "-addext",
      `subjectAltName=${sans.join(",")}`,
      "-keyout",
      keyFile,
      "-out",
      certFile,
    ],
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    await Deno.remove(dir, { recursive: true });
    throw new Error(`openssl req failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return {
    dir,
    certFile,
    keyFile,
    cert: await Deno.readTextFile(certFile),
    key: await Deno.readTextFile(keyFile),
    remove: () => Deno.remove(dir, { recursive: true }).catch(() => {}),
  };
}

/**
 * A TLS echo server on 127.0.0.1: echoes until the client's close_notify/FIN, then writes `farewell` and
 * closes its write side. `close()` stops it and every connection.
 */
export function tlsEchoServer(
  cert: TestCert,
  farewell = "",
): { port: number; handshakes: () => number; close(): Promise<void> } {
  const listener = Deno.listenTls({ hostname: "127.0.0.1", port: 0, cert: cert.cert, key: cert.key });
  const conns = new Set<Deno.TlsConn>();
  const tasks = new Set<Promise<void>>();
  let handshakes = 0;
  const serve = async (c: Deno.TlsConn) => {
    const buf = new Uint8Array(64 * 1024);
    try {
      await c.handshake();
      handshakes++;
      for (;;) {
        const n = await c.read(buf);
        if (n === null) break;
        for (let o = 0; o < n;) o += await c.write(buf.subarray(o, n));
      }
      if (farewell) await c.write(new TextEncoder().encode(farewell));
      await c.closeWrite();
    } catch { /* the client failed the handshake or went away */ }
    conns.delete(c);
    try {
      c.close();
    } catch { /* closed */ }
  };
  const accepting = (async () => {
    for await (const c of listener) {
      conns.add(c);
      const t = serve(c);
      tasks.add(t);
      t.finally(() => tasks.delete(t));
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    handshakes: () => handshakes,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await accepting;
      await Promise.allSettled([...tasks]);
    },
  };
}
