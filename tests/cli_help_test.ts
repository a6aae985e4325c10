/**
 * `wgedge <command> --help` documents every flag the command's parser accepts: the list is derived from the
 * same declaration the parser uses (parserOptions), so a flag added without help text fails here. Misuse
 * (unknown flag, missing value, stray argument) exits 2 naming the problem, with the usage line.
 */
import { assert, assertEquals, assertStringIncludes, assertThrows } from "./helpers/assert.ts";
import { DENO_JSON, MAIN_TS, run } from "./helpers/interop.ts";
import { commands } from "../src/cli/mod.ts";
import { type Command, flagSynopsis, formatHelp, HELP_WIDTH, parserOptions } from "../src/cli/command.ts";
import { LOADER_FLAGS } from "../src/cli/check_config.ts";
import { FLAG_FOR as RELAY_FLAG_FOR } from "../src/config/relay.ts";
import { main } from "../main.ts";

/** Runs main() in this process with console output captured: fast, and the same code path as the binary. */
async function inProcess(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [], err: string[] = [];
  const { log, error } = console;
  console.log = (...a: unknown[]) => out.push(a.join(" "));
  console.error = (...a: unknown[]) => err.push(a.join(" "));
  try {
    const code = await main(argv);
    return { code, stdout: out.join("\n"), stderr: err.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

function wgedge(args: string[]) {
  return run([Deno.execPath(), "run", "-A", "--config", DENO_JSON, MAIN_TS, ...args], { check: false });
}

/** The parser's options, by long name, as node:util parseArgs receives them. */
function accepted(cmd: Command): [string, { short?: string }][] {
  return Object.entries(parserOptions(cmd)) as [string, { short?: string }][];
}

Deno.test("cli help: every command's --help exits 0 and describes every flag its parser accepts", async () => {
  for (const cmd of commands) {
    const r = await inProcess([cmd.name, "--help"]);
    assertEquals(r.code, 0, `${cmd.name} --help: ${r.stderr}`);
    assertEquals(r.stderr, "");
    const help = r.stdout;
    assertEquals(help, formatHelp(cmd));
    assert(help.startsWith(`${cmd.summary}\n\nUsage: wgedge ${cmd.usage}\n`), help);
    const flagLines = help.slice(help.indexOf("\nFlags:\n")).split("\n");
    for (const [name, opt] of accepted(cmd)) {
      const spec = name === "help" ? undefined : cmd.flags[name];
      assert(name === "help" || spec !== undefined, `${cmd.name}: --${name} parsed but not declared`);
      const synopsis = spec ? flagSynopsis(name, spec).trimStart() : "-h, --help";
      const at = flagLines.findIndex((l) => l.trimStart().startsWith(synopsis));
      assert(at >= 0, `${cmd.name} --help does not list --${name}:\n${help}`);
      if (opt.short) assertStringIncludes(flagLines[at], `-${opt.short}, --${name}`);
      // The description: the line's own text after the synopsis, or the next line when the synopsis is long.
      const rest = flagLines[at].trimStart().slice(synopsis.length).trim() || flagLines[at + 1]?.trim() || "";
      assert(/[a-z]{2,}/i.test(rest), `${cmd.name} --${name} has no description:\n${help}`);
      if (spec) {
        assert(spec.help.trim().length >= 8, `${cmd.name} --${name}: help text too short`);
        const block = flagLines.slice(at, at + 6).join(" ").replace(/\s+/g, " ");
        assertStringIncludes(block, spec.help.split(/\s+/).slice(0, 4).join(" "));
        if (spec.env) assertStringIncludes(block, `[env: ${spec.env}]`);
        if (spec.default) assertStringIncludes(block, `[default: ${spec.default.split(/\s+/)[0]}`);
        if (spec.type === "string") {
          assert(spec.arg, `${cmd.name} --${name}: a value flag names its argument`);
        }
      }
    }
    for (const a of cmd.args ?? []) assertStringIncludes(help, `  ${a.name}  `);
  }
});

Deno.test("cli help: flag lines fit the help width; the top-level help lists every command on one line", async () => {
  for (const cmd of commands) {
    const help = formatHelp(cmd);
    for (const line of help.split("\n")) {
      if (line.startsWith("Usage: ")) continue;
      const longWord = line.trim().split(" ").some((w) => w.length > 40);
      assert(longWord || line.length <= HELP_WIDTH, `${cmd.name}: ${line.length} columns: ${line}`);
    }
  }
  const top = await inProcess(["--help"]);
  assertEquals(top.code, 0);
  const lines = top.stdout.split("\n");
  for (const cmd of commands) {
    const line = lines.find((l) => l.trimStart().startsWith(`${cmd.name} `));
    assert(line, `wgedge --help does not list ${cmd.name}`);
    assertStringIncludes(line, cmd.summary);
    assert(!cmd.summary.includes("\n"), `${cmd.name}: summary is one line`);
  }
});

Deno.test("cli help: environment variables named in help are ones the config loader or README knows", async () => {
  const known = [await Deno.readTextFile(new URL("../README.md", import.meta.url))];
  for await (const e of Deno.readDir(new URL("../src/config/", import.meta.url))) {
    if (e.name.endsWith(".ts")) {
      known.push(await Deno.readTextFile(new URL(`../src/config/${e.name}`, import.meta.url)));
    }
  }
  const text = known.join("\n");
  for (const cmd of commands) {
    for (const [name, spec] of Object.entries(cmd.flags)) {
      if (spec.env) assert(text.includes(spec.env), `${cmd.name} --${name}: unknown variable ${spec.env}`);
    }
  }
  // Every relay setting the loader takes from a flag is declared, with its variable, where relays are read.
  const byName = new Map(commands.map((c) => [c.name, c]));
  for (const [env, flag] of Object.entries(RELAY_FLAG_FOR)) {
    assertEquals((LOADER_FLAGS as Record<string, { env?: string }>)[flag]?.env, env);
    for (const c of ["serve", "relay", "check-config"]) assertEquals(byName.get(c)!.flags[flag]?.env, env);
  }
});

Deno.test("cli help: misuse exits 2 naming the flag or argument, with the usage line", async () => {
  for (const cmd of commands) {
    const r = await inProcess([cmd.name, "--no-such-flag"]);
    assertEquals(r.code, 2, `${cmd.name}: ${r.stderr}`);
    assertStringIncludes(r.stderr, "--no-such-flag");
    assertStringIncludes(r.stderr, `Usage: wgedge ${cmd.usage}`);
    assertEquals(r.stdout, "");
    const stringFlag = Object.entries(cmd.flags).find(([, s]) => s.type === "string");
    if (stringFlag) {
      const missing = await inProcess([cmd.name, `--${stringFlag[0]}`]);
      assertEquals(missing.code, 2, `${cmd.name} --${stringFlag[0]} without a value: ${missing.stderr}`);
      assertStringIncludes(missing.stderr, `--${stringFlag[0]}`);
    }
    if (!cmd.positionals) {
      const stray = await inProcess([cmd.name, "stray-word"]);
      assertEquals(stray.code, 2, `${cmd.name} stray-word: ${stray.stderr}`);
      assertStringIncludes(stray.stderr, "stray-word");
    }
  }
});

Deno.test("cli help: a real process exits 0 for --help and 2 for an unknown flag", async () => {
  const help = await wgedge(["ping", "--help"]);
  assertEquals(help.code, 0, help.stderr);
  assertStringIncludes(help.stdout, "-W, --timeout SECONDS");
  assertStringIncludes(help.stdout, "[env: WG_CONFIG]");
  const bad = await wgedge(["serve", "--bogus"]);
  assertEquals(bad.code, 2);
  assertStringIncludes(bad.stderr, "wgedge serve: ");
  assertStringIncludes(bad.stderr, "'--bogus'");
  assertStringIncludes(bad.stderr, "Usage: wgedge serve");
});

Deno.test("cli help: a flag table with a short name used twice is refused", () => {
  const cmd = {
    name: "x",
    flags: {
      one: { type: "boolean", short: "o", help: "first" },
      other: { type: "boolean", short: "o", help: "second" },
    },
  } as const;
  assertThrows(() => parserOptions(cmd), "-o declared for --one and --other");
  assertThrows(
    () => parserOptions({ name: "y", flags: { hold: { type: "boolean", short: "h", help: "clashes" } } }),
    "-h",
  );
});

Deno.test("cli help: `wgedge help <command>` prints that command's help, not the general one", async () => {
  for (const cmd of commands) {
    const r = await inProcess(["help", cmd.name]);
    assertEquals(r.code, 0, `help ${cmd.name}: ${r.stderr}`);
    assertEquals(r.stdout, (await inProcess([cmd.name, "--help"])).stdout, `help ${cmd.name}`);
    assertStringIncludes(r.stdout, `wgedge ${cmd.usage}`);
  }
  const unknown = await inProcess(["help", "nope"]);
  assertEquals(unknown.code, 2);
  assertStringIncludes(unknown.stderr, 'unknown command "nope"');
  const general = await inProcess(["help"]);
  assertEquals(general.code, 0);
  assertStringIncludes(general.stdout, "wgedge help <command>");
});
