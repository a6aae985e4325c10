/** NTRIP_CASTER_LISTEN / NTRIP_CASTER_MOUNTS: good values load, bad ones name the file, line and field. */
import { ConfigErrors, loadConfig } from "../src/config/mod.ts";
import { redactConfig } from "../src/config/redact.ts";
import { assert, assertEquals } from "./helpers/assert.ts";

async function errorsOf(env: Record<string, string>): Promise<string[]> {
  try {
    await loadConfig({ env, flags: {} });
  } catch (e) {
    if (e instanceof ConfigErrors) return e.errors.map((x) => x.message);
    throw e;
  }
  throw new Error("expected ConfigErrors");
}

const MOUNTS = `[
  {"mount": "DST", "source_password": "srcpw", "users": ["rover:roverpw", "b:x:y"],
   "str": "STR;DST;Bend;RTCM 3.3;1005(1);2;GPS;TEST;USA;44.06;-121.32;0;0;x;none;B;N;5000;"},
  {"mount": "/OPEN", "source_password": "pw2", "note": "kept for humans"}
]`;

Deno.test("ntrip caster config: inline mounts, listen address, unknown fields warn, secrets redacted", async () => {
  const { config, warnings } = await loadConfig({
    env: { NTRIP_CASTER_MOUNTS: MOUNTS, NTRIP_CASTER_LISTEN: "127.0.0.1:2102" },
    flags: {},
  });
  const c = config.ntripCaster!;
  assertEquals([c.listen, c.hostname, c.port], ["127.0.0.1:2102", "127.0.0.1", 2102]);
  assertEquals(c.mounts.map((m) => m.mount), ["DST", "OPEN"]);
  assertEquals(c.mounts[0].users, [{ user: "rover", password: "roverpw" }, { user: "b", password: "x:y" }]);
  assertEquals(c.mounts[1].users, undefined, "no users: an open mount");
  assert(c.mounts[0].str?.startsWith("STR;DST;"));
  assertEquals(warnings, [
    "NTRIP_CASTER_MOUNTS:4: [1].note: unknown field ignored (known: mount, source_password, users, str)",
  ]);
  const shown = JSON.stringify(redactConfig(config));
  for (const secret of ["srcpw", "roverpw", "x:y", "pw2"]) assert(!shown.includes(secret), `${secret} shown`);
});

Deno.test("ntrip caster config: a file path, flags over env, default listen :2101", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/mounts.json`;
    await Deno.writeTextFile(path, MOUNTS, { mode: 0o600 });
    const fromFile = (await loadConfig({ env: { NTRIP_CASTER_MOUNTS: path }, flags: {} })).config
      .ntripCaster!;
    assertEquals([fromFile.listen, fromFile.mounts.length], ["0.0.0.0:2101", 2]);
    const fromFlags = (await loadConfig({
      env: { NTRIP_CASTER_MOUNTS: "/nonexistent", NTRIP_CASTER_LISTEN: "bad" },
      flags: { "ntrip-caster-mounts": path, "ntrip-caster-listen": ":2103" },
    })).config.ntripCaster!;
    assertEquals([fromFlags.listen, fromFlags.mounts.length], ["0.0.0.0:2103", 2]);
    const missing = await errorsOf({ NTRIP_CASTER_MOUNTS: `${dir}/nope.json` });
    assertEquals(missing.length, 1);
    assert(
      missing[0].startsWith("NTRIP_CASTER_MOUNTS: expected inline config content or the path"),
      missing[0],
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ntrip caster config: not configured without mounts; a listen address alone warns", async () => {
  const none = await loadConfig({ env: {}, flags: {} });
  assertEquals(none.config.ntripCaster, undefined);
  const listenOnly = await loadConfig({ env: { NTRIP_CASTER_LISTEN: ":2101" }, flags: {} });
  assertEquals(listenOnly.config.ntripCaster, undefined);
  assert(
    listenOnly.warnings.some((w) => w.includes("NTRIP_CASTER_LISTEN: ignored")),
    listenOnly.warnings.join(),
  );
});

Deno.test("ntrip caster config: every problem names variable, line, field and expectation, no secret", async () => {
  const text = `[
  {"mount": "A", "source_password": "has blank"},
  {"mount": "A", "source_password": "ok"},
  {"mount": "bad/name", "source_password": "ok"},
  {"source_password": "ok"},
  {"mount": "B", "source_password": "ok", "users": []},
  {"mount": "C", "source_password": "ok", "users": ["nocolon", ":nouser", 5]},
  {"mount": "D", "source_password": "ok", "str": "not a str line"},
  "just a string"
]`;
  const errors = await errorsOf({ NTRIP_CASTER_MOUNTS: text, NTRIP_CASTER_LISTEN: "1.2.3:99999" });
  assertEquals(errors, [
    'NTRIP_CASTER_LISTEN: expected a valid IPv4 address (four numbers 0..255, no leading zeros), got "1.2.3:99999"',
    "NTRIP_CASTER_MOUNTS:2: [0].source_password: expected a non-empty string without blanks (required; v1 " +
    "sources send it in their SOURCE line), got a 9-character string (not shown)",
    'NTRIP_CASTER_MOUNTS:3: [1].mount: expected a mountpoint not already defined by [0], got "A"',
    "NTRIP_CASTER_MOUNTS:4: [2].mount: expected a mountpoint name (1-100 letters, digits, '_', '.', '-'; " +
    'required), got "\\"bad/name\\""',
    "NTRIP_CASTER_MOUNTS:5: [3].mount: expected a mountpoint name (1-100 letters, digits, '_', '.', '-'; " +
    "required)",
    'NTRIP_CASTER_MOUNTS:6: [4].users: expected a non-empty array of "user:pass" strings (leave the field ' +
    "out for an open mount), got an array",
    'NTRIP_CASTER_MOUNTS:7: [5].users[0]: expected "user:pass" (a user name, a colon, the password), got a ' +
    "7-character string (not shown)",
    'NTRIP_CASTER_MOUNTS:7: [5].users[1]: expected "user:pass" (a user name, a colon, the password), got a ' +
    "7-character string (not shown)",
    'NTRIP_CASTER_MOUNTS:7: [5].users[2]: expected "user:pass" (a user name, a colon, the password), got a ' +
    "number",
    'NTRIP_CASTER_MOUNTS:8: [6].str: expected a sourcetable line starting with STR; (one line), got "not a str ' +
    'line"',
    'NTRIP_CASTER_MOUNTS:9: [7]: expected an object {"mount", "source_password", ...}',
  ]);
  for (const e of errors) assert(!e.includes("has blank") && !e.includes("nouser"), e);
});

Deno.test("ntrip caster config: JSON syntax errors give the line and never quote the text", async () => {
  const errors = await errorsOf({
    NTRIP_CASTER_MOUNTS: '[\n  {"mount": "A",\n   "source_password": "s3cret" "users": []}\n]',
  });
  assertEquals(errors.length, 1);
  assert(errors[0].startsWith("NTRIP_CASTER_MOUNTS:3: expected valid JSON"), errors[0]);
  assert(!errors[0].includes("s3cret"));
  const empty = await errorsOf({ NTRIP_CASTER_MOUNTS: "[]" });
  assert(empty[0].includes("with at least one mount"), empty[0]);
});

Deno.test("ntrip caster config: a field given twice warns with its line; the last applies", async () => {
  const { config, warnings } = await loadConfig({
    env: { NTRIP_CASTER_MOUNTS: '[\n  {"mount": "A",\n   "source_password": "x",\n   "mount": "B"}\n]' },
    flags: {},
  });
  assertEquals(config.ntripCaster!.mounts.map((m) => m.mount), ["B"]);
  assertEquals(warnings, ["NTRIP_CASTER_MOUNTS:4: [0].mount: given twice; the last applies"]);
});
