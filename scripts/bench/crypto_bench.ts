/**
 * `deno task bench`: AEAD seal/open of 1420-byte packets with each backend, and a full WireGuard handshake
 * (initiation -> response -> both sessions) in-process. Run: npx -y deno@2 bench -A scripts/bench/crypto_bench.ts
 */
import { counterNonce, nativeAead, nobleAead } from "../../src/crypto/aead.ts";
import { generatePrivateKey, publicKey } from "../../src/crypto/x25519.ts";
import {
  consumeInitiation,
  consumeResponse,
  createInitiation,
  createResponse,
  deriveSessionKeys,
  Handshake,
  staticIdentity,
} from "../../src/wireguard/noise.ts";
import { CookieChecker, CookieGenerator } from "../../src/wireguard/cookie.ts";

const key = crypto.getRandomValues(new Uint8Array(32));
const packet = crypto.getRandomValues(new Uint8Array(1420));
const nonce = counterNonce(12345);

for (const backend of [nativeAead, nobleAead]) {
  const sealed = backend.seal(key, nonce, packet);
  Deno.bench(
    { name: `seal 1420 B (${backend.name})`, group: "aead-seal", baseline: backend === nativeAead },
    () => {
      backend.seal(key, nonce, packet);
    },
  );
  Deno.bench(
    { name: `open 1420 B (${backend.name})`, group: "aead-open", baseline: backend === nativeAead },
    () => {
      if (!backend.open(key, nonce, sealed)) throw new Error("open failed");
    },
  );
}

const iPriv = generatePrivateKey(), rPriv = generatePrivateKey();
const initiator = staticIdentity(iPriv), responder = staticIdentity(rPriv);
const cookieTx = new CookieGenerator(publicKey(rPriv));
const cookieRx = new CookieChecker(publicKey(rPriv));
let wall = 1_700_000_000_000;

Deno.bench(
  { name: "full handshake (init + response + keys, both sides, with mac1)", group: "handshake" },
  () => {
    const hsI = new Handshake(initiator, responder.publicKey);
    const hsR = new Handshake(responder, initiator.publicKey);
    const init = createInitiation(hsI, 1, wall += 1000);
    cookieTx.addMacs(init.bytes, 0);
    if (!cookieRx.checkMac1(init.bytes)) throw new Error("mac1");
    const r = consumeInitiation(responder, init, () => hsR, 0, 0);
    if (!("hs" in r)) throw new Error("initiation rejected");
    const resp = createResponse(hsR, 2)!;
    if (!consumeResponse(hsI, resp)) throw new Error("response rejected");
    if (!deriveSessionKeys(hsI) || !deriveSessionKeys(hsR)) throw new Error("keys");
  },
);
