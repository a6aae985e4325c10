/** Checks that span sections of the one loader. */
import { assert, assertRejects, assertStringIncludes } from "./helpers/assert.ts";
import { loadConfig } from "../src/config/mod.ts";
import { generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { encodeKey } from "../src/crypto/x25519.ts";

const priv = encodeKey(generatePrivateKey()), peer = encodeKey(publicKey(generatePrivateKey()));
const pipeForm = `${priv}|${peer}|127.0.0.1:51820|10.9.0.2`;

Deno.test("config: via=wg:NAME must name a configured tunnel; check-config says which variable to set", async () => {
  const e = await assertRejects(() =>
    loadConfig({ env: { RELAY_1: "1000;80;10.9.0.1;TCP;via=wg:nope" }, flags: {} })
  );
  assertStringIncludes(e.message, "RELAY_1");
  assertStringIncludes(e.message, "WG_TUNNEL_NOPE");
  assert(!e.message.includes(priv), "no secret in the error");
});

Deno.test("config: via=wg:NAME is accepted for WG_TUNNEL_<NAME>, and wg:main for WG_CONFIG", async () => {
  const named = await loadConfig({
    env: { RELAY_1: "1000;80;10.9.0.1;TCP;via=wg:office", WG_TUNNEL_OFFICE: pipeForm },
    flags: {},
  });
  assert(named.config.relay?.relays[0].via === "wg:office");
  const main = await loadConfig({
    env: { RELAY_1: "1000;80;10.9.0.1;TCP;via=wg:main", WG_CONFIG: pipeForm },
    flags: {},
  });
  assert(main.config.tunnel !== undefined && main.config.relay?.relays[0].via === "wg:main");
  const e = await assertRejects(() =>
    loadConfig({ env: { RELAY_1: "1000;80;10.9.0.1;TCP;via=wg:main" }, flags: {} })
  );
  assertStringIncludes(e.message, "or WG_CONFIG");
});
