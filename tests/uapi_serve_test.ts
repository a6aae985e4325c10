/**
 * serve's named tunnels and their UAPI sockets, in this process with a temporary WG_UAPI_DIR (no root): two
 * names pooled onto one device get a socket each on that device; a reload that changes a name's tunnel moves
 * its socket to the new device; a name wg cannot use runs without one; removal and stop delete the files.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { uapiTalk } from "./helpers/uapi.ts";
import { createSupervisor } from "../src/cli/server.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { keyToHex } from "../src/wire/uapi.ts";

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);

async function tunnelFile(dir: string, file: string) {
  const sk = generatePrivateKey();
  const path = `${dir}/${file}`;
  await Deno.writeTextFile(
    path,
    `[Interface]\nPrivateKey = ${encodeKey(sk)}\nAddress = 10.7.0.2/32\n\n[Peer]\nPublicKey = ${
      encodeKey(publicKey(generatePrivateKey()))
    }\nAllowedIPs = 10.7.0.0/24\n`,
    { mode: 0o600 },
  );
  return { path, privateHex: keyToHex(sk) };
}

Deno.test("uapi under serve: pooled names share a device, a reload moves the socket, removal deletes it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-uapi-serve-" });
  const sockets = `${dir}/run`;
  const envFile = `${dir}/wgedge.env`;
  const write = (text: string) =>
    Deno.writeTextFile(envFile, `WG_UAPI_DIR=${sockets}\n${text}`, { mode: 0o600 });
  const one = await tunnelFile(dir, "one.conf"), two = await tunnelFile(dir, "two.conf");
  await write(
    `WG_TUNNEL_A=${one.path}\nWG_TUNNEL_B=${one.path}\nWG_TUNNEL_A_NAME_MUCH_TOO_LONG=${two.path}\n`,
  );
  const sup = createSupervisor({ flags: {}, env: {}, envFile, admin: false });
  try {
    await sup.start();
    const a = `${sockets}/a.sock`, b = `${sockets}/b.sock`;
    assert((await uapiTalk(a, "get=1\n\n")).startsWith(`private_key=${one.privateHex}\n`));
    assert((await uapiTalk(b, "get=1\n\n")).startsWith(`private_key=${one.privateHex}\n`));
    assert(!(await exists(`${sockets}/a_name_much_too_long.sock`)), "a name wg cannot use gets no socket");
    // A change through one name is the device's: the other name and the status see it.
    const peer = keyToHex(publicKey(generatePrivateKey()));
    assertEquals(await uapiTalk(a, `set=1\npublic_key=${peer}\nallowed_ip=10.8.0.0/16\n\n`), "errno=0\n\n");
    assert((await uapiTalk(b, "get=1\n\n")).includes("allowed_ip=10.8.0.0/16"));
    const st = sup.registry.status().tunnels as { names: string[]; peers: { allowedIps: string[] }[] }[];
    const pooled = st.find((t) => t.names.includes("a"))!;
    assertEquals(pooled.names.sort(), ["a", "b"]);
    assertEquals(pooled.peers[1].allowedIps, ["10.8.0.0/16"]);

    // a now names the other configuration: its socket answers for the new device; b stays.
    await write(`WG_TUNNEL_A=${two.path}\nWG_TUNNEL_B=${one.path}\n`);
    assertEquals((await sup.reload()).result, "success");
    assert((await uapiTalk(a, "get=1\n\n")).startsWith(`private_key=${two.privateHex}\n`));
    assert((await uapiTalk(b, "get=1\n\n")).startsWith(`private_key=${one.privateHex}\n`));

    await write(`WG_TUNNEL_A=${two.path}\n`);
    assertEquals((await sup.reload()).result, "success");
    assert(!(await exists(b)), "b removed from the configuration: its socket is gone");
    await sup.stop();
    assert(!(await exists(a)), "stopped: no socket left");
  } finally {
    await sup.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
