/** X25519 by `@noble/curves`: the portable reference backend (x25519.ts loads it only when needed). */
import { x25519 } from "@noble/curves/ed25519.js";
import type { X25519Backend } from "./x25519.ts";

export const nobleX25519: X25519Backend = {
  name: "noble",
  publicKey: (k) => x25519.getPublicKey(k),
  sharedSecret: (k, p) => x25519.getSharedSecret(k, p),
};
