/**
 * genkey / pubkey / genpsk: byte-for-byte the formats of `wg genkey|pubkey|genpsk` (base64 + newline). The
 * key code is imported when a command runs, so the command table (and `wgedge --help`) does not load it.
 */
import { type Command, defineCommand, UsageError } from "./command.ts";

const x25519 = () => import("../crypto/x25519.ts");

async function readStdin(): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of Deno.stdin.readable) {
    chunks.push(chunk);
    total += chunk.length;
    if (total > 4096) throw new UsageError("pubkey: input too long; expected one base64 private key");
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(all);
}

export const genkeyCommand: Command = defineCommand({
  name: "genkey",
  summary: "Generate a new private key (base64) on stdout, like `wg genkey`.",
  usage: "genkey > private.key",
  flags: {},
  notes: ["The key is a secret: write it to a file only you can read (umask 077)."],
  async run() {
    const { encodeKey, generatePrivateKey } = await x25519();
    console.log(encodeKey(generatePrivateKey()));
    return 0;
  },
});

export const genpskCommand: Command = defineCommand({
  name: "genpsk",
  summary: "Generate a new preshared key (base64) on stdout, like `wg genpsk`.",
  usage: "genpsk > preshared.key",
  flags: {},
  notes: ["Both peers put the same key in their [Peer] PresharedKey; it is a secret."],
  async run() {
    const [{ encodeKey }, { randomBytes }] = await Promise.all([x25519(), import("../util/random.ts")]);
    console.log(encodeKey(randomBytes(32)));
    return 0;
  },
});

export const pubkeyCommand: Command = defineCommand({
  name: "pubkey",
  summary: "Read a private key on stdin, print its public key, like `wg pubkey`.",
  usage: "pubkey < private.key",
  flags: {},
  async run() {
    const text = await readStdin();
    const { decodeKey, encodeKey, publicKey } = await x25519();
    let key: Uint8Array;
    try {
      key = decodeKey(text, "private key on stdin");
    } catch (e) {
      throw new UsageError((e as Error).message);
    }
    console.log(encodeKey(publicKey(key)));
    return 0;
  },
});
