/** The CLI as a user meets it: subprocesses of `deno run main.ts`, exit codes and output. */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./helpers/assert.ts";
import { collect, DENO_JSON, interopTest, MAIN_TS, run, waitFor } from "./helpers/interop.ts";
import { commands } from "../src/cli/mod.ts";

async function wgedge(args: string[], stdin?: string) {
  return await run([Deno.execPath(), "run", "-A", "--config", DENO_JSON, MAIN_TS, ...args], {
    stdin,
    check: false,
  });
}

const KEY_RE = /^[A-Za-z0-9+/]{43}=\n$/;

Deno.test("cli: version and -V", async () => {
  for (const a of [["version"], ["-V"]]) {
    const r = await wgedge(a);
    assertEquals(r.code, 0);
    assertMatch(r.stdout, /^wgedge \d+\.\d+\.\d+ /);
  }
});

Deno.test("cli: every command answers --help with its usage and exits 0", async () => {
  for (const c of commands) {
    const r = await wgedge([c.name, "--help"]);
    assertEquals(r.code, 0, `${c.name} --help: ${r.stderr}`);
    assertStringIncludes(r.stdout, `Usage: wgedge ${c.name}`);
  }
});

Deno.test("cli: misuse exits 2 with a clear message", async () => {
  const unknown = await wgedge(["frobnicate"]);
  assertEquals(unknown.code, 2);
  assertStringIncludes(unknown.stderr, 'unknown command "frobnicate"');
  const badFlag = await wgedge(["genkey", "--bogus"]);
  assertEquals(badFlag.code, 2);
  assertStringIncludes(badFlag.stderr, "Usage: wgedge genkey");
  const noAddr = await wgedge(["ping", "-c", "/nonexistent.conf"]);
  assertEquals(noAddr.code, 2);
  assertStringIncludes(noAddr.stderr, "expected exactly one ADDRESS");
  const badCount = await wgedge(["ping", "-n", "zero", "10.0.0.1"]);
  assertEquals(badCount.code, 2);
  assertStringIncludes(badCount.stderr, "--count: expected an integer");
  const badKey = await wgedge(["pubkey"], "not a key\n");
  assertEquals(badKey.code, 2);
  assertStringIncludes(badKey.stderr, "expected 44 characters of base64");
});

Deno.test("cli: up/ping without a tunnel configuration say so", async () => {
  const r = await wgedge(["up"]);
  assertEquals(r.code, 2);
  assertStringIncludes(r.stderr, "no tunnel configured: pass -c wg.conf or set WG_CONFIG");
  const missing = await wgedge(["up", "-c", "/nonexistent/wg.conf"]);
  assertEquals(missing.code, 1);
  assertStringIncludes(missing.stderr, "/nonexistent/wg.conf");
});

Deno.test("cli: genkey/genpsk print 44-char base64 + newline; pubkey is deterministic", async () => {
  const k = await wgedge(["genkey"]);
  assertEquals(k.code, 0);
  assertMatch(k.stdout, KEY_RE);
  const raw = Uint8Array.from(atob(k.stdout.trim()), (c) => c.charCodeAt(0));
  assertEquals(raw[0] & 7, 0, "clamped low bits");
  assertEquals(raw[31] & 0xc0, 0x40, "clamped high bits");
  const psk = await wgedge(["genpsk"]);
  assertMatch(psk.stdout, KEY_RE);
  const p1 = await wgedge(["pubkey"], k.stdout), p2 = await wgedge(["pubkey"], k.stdout);
  assertMatch(p1.stdout, KEY_RE);
  assertEquals(p1.stdout, p2.stdout);
});

interopTest("cli: genkey/pubkey are byte-for-byte compatible with wg genkey/pubkey", async () => {
  const ours = (await wgedge(["genkey"])).stdout;
  const theirPub = await run(["wg", "pubkey"], { stdin: ours });
  const ourPub = await wgedge(["pubkey"], ours);
  assertEquals(ourPub.stdout, theirPub.stdout, "same public key, same bytes (including the newline)");
  const wgKey = (await run(["wg", "genkey"])).stdout;
  assertEquals(
    (await wgedge(["pubkey"], wgKey)).stdout,
    (await run(["wg", "pubkey"], { stdin: wgKey })).stdout,
  );
  const wgPsk = (await run(["wg", "genpsk"])).stdout;
  assertMatch(wgPsk, KEY_RE);
});

Deno.test("cli: demo --once completes handshakes, every ping, and fetches through the reverse proxy", async () => {
  const r = await wgedge(["demo", "-n", "2", "--once"]);
  assertEquals(r.code, 0, r.stderr);
  assertStringIncludes(r.stdout, "8/8 pings answered.");
  assertStringIncludes(r.stdout, "handshakes: client 1, server 1");
  assertMatch(
    r.stdout,
    /self-check: +GET http:\/\/127\.0\.0\.1:\d+\/ -> 200: Hello from a service behind NAT/,
  );
  assert(!/PrivateKey|privateKey/.test(r.stdout), "no private key printed");
});

Deno.test("cli: demo keeps running for the user to curl; SIGTERM stops it cleanly", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", DENO_JSON, MAIN_TS, "demo", "-n", "1"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const out = collect(child.stdout), err = collect(child.stderr);
  try {
    await waitFor(() => out.text().includes("Running. Press Ctrl-C"), `demo running\n${err.text()}`, 600, 50);
    const url = /try: +curl (\S+)/.exec(out.text())![1];
    const dash = /dashboard: +(\S+)/.exec(out.text())![1];
    const curl = await run(["curl", "-sS", "--max-time", "30", url], { check: false });
    assertStringIncludes(curl.stdout, "Hello from a service behind NAT");
    const page = await fetch(dash);
    assertEquals(page.status, 200);
    assertStringIncludes(await page.text(), "<html");
  } finally {
    child.kill("SIGTERM");
    const st = await child.status;
    await Promise.all([out.done, err.done]);
    assertEquals(st.code, 0, err.text());
  }
});

Deno.test("cli: ping and tunnel dials outside every peer's AllowedIPs fail at once with 'no route'", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const conf = `${dir}/office.conf`;
    const own = (await wgedge(["genkey"])).stdout.trim();
    const peer = (await wgedge(["pubkey"], (await wgedge(["genkey"])).stdout)).stdout.trim();
    await Deno.writeTextFile(
      conf,
      `[Interface]\nPrivateKey = ${own}\nAddress = 10.9.0.2/32\n[Peer]\nPublicKey = ${peer}\nAllowedIPs = 10.9.0.0/24\nEndpoint = 127.0.0.1:9\n`,
      { mode: 0o600 },
    );
    const r = await wgedge(["ping", "-c", conf, "-n", "1", "192.168.5.5"]);
    assertEquals(r.code, 1);
    assertStringIncludes(r.stderr, "no route to 192.168.5.5: not inside any peer's AllowedIPs");
    // Its log names the tunnel as `up -c office.conf` would, not "wg0".
    assertStringIncludes(r.stderr, "[wg.office] device up");
    const { loadConfig } = await import("../src/config/mod.ts");
    const { openTunnel } = await import("../src/net/tunnels.ts");
    const { config } = await loadConfig({ env: {}, flags: { config: conf } });
    const t = await openTunnel(config.tunnel!);
    try {
      const err = await t.net.dialTcp("192.168.5.5", 80).then(() => "", (e) => (e as Error).message);
      assertStringIncludes(err, "no route to 192.168.5.5");
      assertEquals(t.device.status().peers[0].keying, "public-key-only");
    } finally {
      t.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
