/**
 * A command loads only what it needs (issue 14): `wgedge version`, `--help`, `help`, `genkey` and a command's
 * own `--help` must not evaluate the services, the network layers, the config loaders or the npm packages.
 *
 * How: the command runs as a real subprocess of `deno run main.ts` under an import map that remaps every one
 * of those modules to a directory that does not exist. Deno resolves and loads a module when the program
 * imports it, so the run fails ("Module not found ... poisoned") the moment anything imports one of them:
 * statically from the command table (e.g. someone re-adds `import { ... } from "./server.ts"` to a command
 * file, or a static @noble import to x25519.ts) or dynamically on the command's path. A string-literal
 * `import()` that the command does not execute is never resolved, so lazily loaded modules pass. Control
 * runs prove the poisoning takes effect: a command that does load the services fails under the same map, and
 * so does a bare `import "hono"`. `version` is held to more: it must not load the command table at all.
 */
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { DENO_JSON, MAIN_TS, run } from "./helpers/interop.ts";

const ROOT = new URL("../", import.meta.url);
const denoJson = JSON.parse(Deno.readTextFileSync(DENO_JSON)) as { imports: Record<string, string> };

/** Prefixes of src/ that no light command may evaluate. */
const HEAVY_DIRS = ["src/services/", "src/net/", "src/netstack/", "src/wireguard/device.ts"];

async function withPoisonedMap<T>(
  fn: (mapFile: string, poisoned: string) => Promise<T>,
  extra: string[] = [],
): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-lazy-" });
  try {
    // Never created: resolving anything into it fails with its path in the message.
    const poisoned = new URL(`file://${dir}/poisoned/`).href;
    const imports: Record<string, string> = {};
    // Every npm package of deno.json (hono, @noble/*, json5), bare and with subpaths.
    for (const key of Object.keys(denoJson.imports)) {
      imports[key] = key.endsWith("/") ? `${poisoned}${key}` : `${poisoned}${key}.js`;
    }
    for (const p of [...HEAVY_DIRS, ...extra]) imports[new URL(p, ROOT).href] = `${poisoned}${p}`;
    imports[new URL("src/config/mod.ts", ROOT).href] = `${poisoned}config_mod.ts`;
    const mapFile = `${dir}/import_map.json`;
    await Deno.writeTextFile(mapFile, JSON.stringify({ imports }));
    return await fn(mapFile, poisoned);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function wgedge(mapFile: string, args: string[], env: Record<string, string> = {}) {
  const envArgs = Object.entries(env).map(([k, v]) => `${k}=${v}`);
  return run(
    [
      "env",
      ...envArgs,
      Deno.execPath(),
      "run",
      "-A",
      "--config",
      DENO_JSON,
      "--import-map",
      mapFile,
      MAIN_TS,
      ...args,
    ],
    { check: false },
  );
}

Deno.test("cli: version, --help, help, genkey and a command's --help load no service, network layer or npm package", async () => {
  await withPoisonedMap(async (mapFile, poisoned) => {
    for (
      const args of [
        ["version"],
        ["-V"],
        ["--help"],
        ["help"],
        ["genkey"],
        ["genpsk"],
        ["serve", "--help"],
        [
          "relay",
          "--help",
        ],
        ["up", "--help"],
        ["mwgp", "--help"],
        ["help", "serve"],
      ]
    ) {
      const r = await wgedge(mapFile, args);
      assert(!r.stderr.includes(poisoned), `wgedge ${args.join(" ")} loaded a poisoned module:\n${r.stderr}`);
      assertEquals(r.code, 0, `wgedge ${args.join(" ")}: ${r.stderr}`);
    }
  });
});

Deno.test("cli: version, -V and --version do not even load the command table", async () => {
  // main.ts answers them before its string-literal import() of src/cli/mod.ts (every command file).
  await withPoisonedMap(async (mapFile, poisoned) => {
    for (const args of [["version"], ["-V"], ["--version"]]) {
      const r = await wgedge(mapFile, args);
      assert(!r.stderr.includes(poisoned), `wgedge ${args.join(" ")} loaded a poisoned module:\n${r.stderr}`);
      assertEquals(r.code, 0, `wgedge ${args.join(" ")}: ${r.stderr}`);
      assertStringIncludes(r.stdout, "wgedge ");
    }
    // Control: a command that needs the table trips over the poisoned mod.ts.
    const genkey = await wgedge(mapFile, ["genkey"]);
    assert(genkey.code !== 0, genkey.stdout);
    assertStringIncludes(genkey.stderr, poisoned);
  }, ["src/cli/mod.ts"]);
});

Deno.test("cli: the poisoned import map does catch a command that loads the services, and the npm packages", async () => {
  await withPoisonedMap(async (mapFile, poisoned) => {
    // relay runs server.ts (the supervisor and every service): it must trip over the poison, not start.
    const relay = await wgedge(mapFile, ["relay", "-r", "1;2;127.0.0.1;TCP", "--env-file", "/nonexistent"]);
    assertEquals(relay.code, 1, relay.stderr);
    assertStringIncludes(relay.stderr, poisoned);
    // genkey with the noble backend forced must import @noble/curves, and fail the same way.
    const noble = await wgedge(mapFile, ["genkey"], { WGEDGE_X25519: "noble" });
    assert(noble.code !== 0, noble.stdout);
    assertStringIncludes(noble.stderr, poisoned);
    const script = `${await Deno.makeTempDir({ prefix: "wgedge-lazy-hono-" })}/x.ts`;
    try {
      await Deno.writeTextFile(script, 'import "hono";\n');
      const r = await run(
        [Deno.execPath(), "run", "-A", "--config", DENO_JSON, "--import-map", mapFile, script],
        { check: false },
      );
      assert(r.code !== 0);
      assertStringIncludes(r.stderr, poisoned);
    } finally {
      await Deno.remove(script.slice(0, script.lastIndexOf("/")), { recursive: true });
    }
  });
});
