/** Talking to a UAPI socket as `wg` does: write requests, read until every reply (`errno=N` + blank line). */

/** Sends `text` (one or more requests) and resolves the replies once `replies` of them have ended. */
export async function uapiTalk(path: string, text: string, replies = 1): Promise<string> {
  const conn = await Deno.connect({ transport: "unix", path });
  try {
    await conn.write(new TextEncoder().encode(text));
    let out = "";
    const buf = new Uint8Array(65536);
    const dec = new TextDecoder();
    while ((out.match(/errno=-?\d+\n\n/g) ?? []).length < replies) {
      const n = await conn.read(buf);
      if (n === null) break;
      out += dec.decode(buf.subarray(0, n));
    }
    return out;
  } finally {
    conn.close();
  }
}
