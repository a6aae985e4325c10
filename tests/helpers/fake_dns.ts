/** A DNS server on loopback for tests: answers from a fixed zone, counts the queries it gets. */

export type FakeZone = Record<string, { txt?: string[]; a?: string }>;

/** A DNS server on loopback answering TXT and A queries from `zone` (NXDOMAIN for other names). */
export function fakeZoneDns(zone: FakeZone): { port: number; queries: () => number; close: () => void } {
  const sock = Deno.listenDatagram({ transport: "udp", hostname: "127.0.0.1", port: 0 });
  let queries = 0;
  (async () => {
    try {
      for (;;) {
        const [q, from] = await sock.receive();
        queries++;
        let off = 12;
        const labels: string[] = [];
        while (off < q.length && q[off] !== 0) {
          labels.push(new TextDecoder().decode(q.subarray(off + 1, off + 1 + q[off])));
          off += 1 + q[off];
        }
        const qEnd = off + 5;
        const qtype = (q[off + 1] << 8) | q[off + 2];
        const entry = zone[labels.join(".")];
        const answers: number[][] = [];
        const rr = (type: number, rdata: number[]) => [
          0xc0,
          12,
          0,
          type,
          0,
          1,
          0,
          0,
          0,
          60,
          rdata.length >> 8,
          rdata.length & 0xff,
          ...rdata,
        ];
        if (entry && qtype === 16) {
          for (const t of entry.txt ?? []) answers.push(rr(16, [t.length, ...new TextEncoder().encode(t)]));
        }
        if (entry?.a && qtype === 1) answers.push(rr(1, entry.a.split(".").map(Number)));
        const body = answers.flat();
        const r = new Uint8Array(qEnd + body.length);
        r.set(q.subarray(0, qEnd));
        r[2] = 0x81;
        r[3] = entry ? 0x80 : 0x83;
        r.set([0, 1, 0, answers.length, 0, 0, 0, 0], 4);
        r.set(body, qEnd);
        await sock.send(r, from);
      }
    } catch { /* closed */ }
  })();
  return { port: (sock.addr as Deno.NetAddr).port, queries: () => queries, close: () => sock.close() };
}
