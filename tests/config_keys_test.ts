/**
 * Bad key values: every message says what was expected (a key, or for WG_PRIVATE_KEY a key or a key file),
 * names the variable or file and line, describes the value, and never contains it.
 */
import { assert, assertEquals, assertRejects, assertStringIncludes } from "./helpers/assert.ts";
import { type ConfigError, ConfigErrors, loadConfig, type LoadOptions } from "../src/config/mod.ts";
import { describeBadKey, isUnmistakablyPath, KEY_EXPECTED } from "../src/config/keys.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { seededRandom } from "../src/util/random.ts";

const rng = seededRandom(4242);
const PRIV = encodeKey(generatePrivateKey(rng));
const PEER = encodeKey(publicKey(generatePrivateKey(rng)));
const PSK = encodeKey(rng(new Uint8Array(32)));

/** Copies of real keys with one typical mistake each. */
const TYPO_SHORT = "abcd1234EFGH"; // 12 characters, no '/': neither a key nor an existing file
const TYPO_DROPPED = PRIV.slice(0, 20) + PRIV.slice(21); // one character lost
const TYPO_SLASHED = "Zm9v/" + PRIV.slice(5, 43); // contains '/', as many real keys do
const TYPO_SPACE = PRIV.slice(0, 22) + " " + PRIV.slice(22);

function ini(priv = PRIV, pub = PEER, psk = PSK): string {
  return `[Interface]\nPrivateKey = ${priv}\nAddress = 10.0.0.2/32\n\n[Peer]\nPublicKey = ${pub}\n` +
    `PresharedKey = ${psk}\nAllowedIPs = 0.0.0.0/0\n`;
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-keys-test-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

async function errorsOf(opts: Partial<LoadOptions>): Promise<ConfigError[]> {
  const e = await assertRejects(() => loadConfig({ env: {}, flags: {}, ...opts }));
  return ConfigErrors.flatten(e);
}

function assertNotShown(text: string, ...values: string[]): void {
  for (const v of values) assert(!text.includes(v.trim()), `the bad value was echoed: ${text}`);
}

Deno.test("keys: a malformed WG_PRIVATE_KEY says a key or a key file was expected, without echoing it", async () => {
  const errors = await errorsOf({ env: { WG_CONFIG: ini(), WG_PRIVATE_KEY: TYPO_SHORT } });
  assertEquals(errors.map((e) => e.message), [
    `WG_PRIVATE_KEY: expected ${KEY_EXPECTED} or the path of a file containing one, ` +
    "got a 12-character value that is neither",
  ]);
  assertEquals(errors[0].source, "WG_PRIVATE_KEY");
  for (const typo of [TYPO_DROPPED, TYPO_SLASHED, TYPO_SPACE]) {
    const [err, ...rest] = await errorsOf({ env: { WG_CONFIG: ini(), WG_PRIVATE_KEY: typo } });
    assertEquals(rest.length, 0);
    assert(err.message.startsWith(`WG_PRIVATE_KEY: expected ${KEY_EXPECTED} or the path`), err.message);
    assertStringIncludes(err.message, "that is neither");
    assert(!err.message.includes("readable file"), `not a message about config files: ${err.message}`);
    assertNotShown(err.message + (err.got ?? ""), typo, typo.slice(0, 20), typo.slice(-20));
  }
  const [spaced] = await errorsOf({ env: { WG_CONFIG: ini(), WG_PRIVATE_KEY: TYPO_SPACE } });
  assertStringIncludes(spaced.message, "got a 45-character value that is neither (with whitespace inside)");
  // Values no file system accepts as a name are still just "neither", never an exception or an echo.
  for (const odd of ["k".repeat(5000), "ab\u0000cd/ef", "../" + "x/".repeat(3000)]) {
    const [e, ...more] = await errorsOf({ env: { WG_CONFIG: ini(), WG_PRIVATE_KEY: odd } });
    assertEquals(more.length, 0);
    assertStringIncludes(e.message, "that is neither");
    assertNotShown(e.message, odd.slice(0, 12));
  }
});

Deno.test("keys: WG_PRIVATE_KEY from an env file names the file, the line and the variable", async () => {
  await withDir(async (dir) => {
    const env = `${dir}/wgedge.env`;
    await Deno.writeTextFile(env, `# keys\nWG_CONFIG=${dir}/wg0.conf\nWG_PRIVATE_KEY=${TYPO_SLASHED}\n`, {
      mode: 0o600,
    });
    await Deno.writeTextFile(`${dir}/wg0.conf`, ini(), { mode: 0o600 });
    const errors = await errorsOf({ envFile: env });
    assertEquals(errors.length, 1, errors.map((e) => e.message).join("\n"));
    assert(
      errors[0].message.startsWith(`${env}:3: WG_PRIVATE_KEY: expected ${KEY_EXPECTED} or the path`),
      errors[0].message,
    );
    assertNotShown(errors[0].message, TYPO_SLASHED);
  });
});

Deno.test("keys: WG_PRIVATE_KEY as a path: missing, not a file, or a file without a key", async () => {
  await withDir(async (dir) => {
    const missing = `${dir}/wg/private.key`;
    const [m] = await errorsOf({ env: { WG_CONFIG: ini(), WG_PRIVATE_KEY: missing } });
    // Unmistakably a path (not key-shaped): naming it is what helps.
    assertEquals(
      m.message,
      `WG_PRIVATE_KEY: expected ${KEY_EXPECTED} or the path of a file containing one, ` +
        `got ${JSON.stringify(missing)}, which is not a key and names no file`,
    );
    const [d] = await errorsOf({ env: { WG_CONFIG: ini(), WG_PRIVATE_KEY: dir } });
    assertStringIncludes(d.message, "(not a regular file)");
    const bad = `${dir}/bad.key`;
    await Deno.writeTextFile(bad, `${TYPO_DROPPED}\n`, { mode: 0o600 });
    const [f] = await errorsOf({ env: { WG_CONFIG: ini(), WG_PRIVATE_KEY: bad } });
    assertEquals(
      f.message,
      `${bad}: WG_PRIVATE_KEY: expected the file to contain ${KEY_EXPECTED}, got a 43-character value`,
    );
    const good = `${dir}/good.key`;
    await Deno.writeTextFile(good, `${PRIV}\n`, { mode: 0o600 });
    const { config } = await loadConfig({ env: { WG_CONFIG: ini(), WG_PRIVATE_KEY: good }, flags: {} });
    assertEquals(encodeKey(config.tunnel!.iface.privateKey), PRIV);
  });
});

Deno.test("keys: bad PrivateKey/PublicKey/PresharedKey in a wg-quick file name the file and line", async () => {
  await withDir(async (dir) => {
    const path = `${dir}/wg0.conf`;
    await Deno.writeTextFile(path, ini(TYPO_SLASHED, TYPO_SHORT, TYPO_SPACE), { mode: 0o600 });
    const errors = await errorsOf({ env: { WG_CONFIG: path } });
    const text = errors.map((e) => e.message).join("\n");
    assertStringIncludes(text, `${path}:2: PrivateKey: expected ${KEY_EXPECTED}, got a 43-character value`);
    assertStringIncludes(text, `${path}:6: PublicKey: expected ${KEY_EXPECTED}, got a 12-character value`);
    assertStringIncludes(
      text,
      `${path}:7: PresharedKey: expected ${KEY_EXPECTED}, got a 45-character value with whitespace inside`,
    );
    assertNotShown(text, TYPO_SLASHED, TYPO_SHORT, TYPO_SPACE, TYPO_SPACE.slice(0, 22), TYPO_SPACE.slice(23));
  });
  // Inline: the variable and the line within it.
  const inline = await errorsOf({ env: { WG_CONFIG: ini(PRIV, PEER, PSK.replace(/=$/, "")) } });
  assertEquals(inline.map((e) => e.message), [
    `WG_CONFIG:7: PresharedKey: expected ${KEY_EXPECTED}, got a 43-character value`,
  ]);
});

Deno.test("keys: the pipe form names the field (and the line in a file), never the key", async () => {
  const errors = await errorsOf({
    env: { WG_CONFIG: `${TYPO_SLASHED}|${TYPO_SHORT}|192.0.2.1:51820|10.0.0.2` },
  });
  assertEquals(errors.map((e) => e.message), [
    `WG_CONFIG: PrivateKey (field 1): expected ${KEY_EXPECTED}, got a 43-character value`,
    `WG_CONFIG: PublicKey (field 2): expected ${KEY_EXPECTED}, got a 12-character value`,
  ]);
  await withDir(async (dir) => {
    const path = `${dir}/client.pipe`;
    await Deno.writeTextFile(path, `# client\n${PRIV}|${TYPO_DROPPED}|192.0.2.1:51820|10.0.0.2\n`, {
      mode: 0o600,
    });
    const [e, ...rest] = await errorsOf({ env: { WG_CONFIG: path } });
    assertEquals(rest.length, 0);
    assertEquals(
      e.message,
      `${path}:2: PublicKey (field 2): expected ${KEY_EXPECTED}, got a 43-character value`,
    );
    assertNotShown(e.message, TYPO_DROPPED, PRIV);
  });
});

Deno.test("keys: a key given where a config belongs is described, not shown", async () => {
  const [e] = await errorsOf({ env: { WG_CONFIG: PRIV } });
  assertEquals(e.source, "WG_CONFIG");
  assertStringIncludes(e.message, "got a 44-character value (not shown: it does not read like a path)");
  assertNotShown(e.message, PRIV);
});

Deno.test("config: a mistyped secret given where a config belongs is described; a real path is named", async () => {
  const [secret] = await errorsOf({ env: { WG_TUNNEL_OFFICE: "hunter2secret" } });
  assertStringIncludes(secret.message, "got a 13-character value (not shown: it does not read like a path)");
  assertNotShown(secret.message, "hunter2secret");
  const [path] = await errorsOf({ env: { WG_TUNNEL_OFFICE: "/nonexistent/office.conf" } });
  assertStringIncludes(path.message, `got "/nonexistent/office.conf"`);
});

Deno.test("keys: describeBadKey says what is wrong with the shape, using no character of the value", () => {
  assertEquals(describeBadKey(""), "an empty value");
  assertEquals(describeBadKey("   "), "an empty value");
  assertEquals(describeBadKey("12345678901"), "an 11-character value");
  assertEquals(describeBadKey(PRIV.slice(0, 43)), "a 43-character value");
  assertEquals(describeBadKey(PRIV.slice(0, 43) + "A"), 'a 44-character value not ending in "="');
  assertEquals(describeBadKey(PRIV.slice(0, 42) + "B="), "a 44-character value not encoding 32 bytes");
  assertEquals(
    describeBadKey(PRIV.slice(0, 10) + "-" + PRIV.slice(11)),
    "a 44-character value with characters outside base64 (A-Z a-z 0-9 + / =)",
  );
  assertEquals(describeBadKey(`${PRIV}\n${PSK}`), "a multi-line value (2 lines)");
});

Deno.test("keys: only unmistakable paths are ever shown; key-shaped values never are", () => {
  for (const p of ["/etc/wireguard/private.key", "./wg.key", "../keys/wg0.key", "~/wg/private"]) {
    assert(isUnmistakablyPath(p), p);
  }
  const keyish = [
    PRIV,
    TYPO_DROPPED,
    TYPO_SLASHED,
    "/" + PRIV.slice(1),
    "/" + PRIV.slice(1, 40),
    "secret/typo",
    "hunter2",
    "/abcdefghijklmnopqrstuvwxyz0123",
  ];
  for (const v of keyish) assert(!isUnmistakablyPath(v), v);
});
