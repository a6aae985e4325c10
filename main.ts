/**
 * wgedge — a userspace WireGuard edge. Entry point: dispatches to one command in src/cli/.
 *
 * `version` (and -V/--version) runs before the command table is imported (issue 14): the table's static
 * imports (every command file with its flag declarations and the config modules they take defaults from) cost
 * about 2 MiB and some milliseconds that printing the version does not need. The table is a string-literal
 * import() so `deno compile` still includes it; deno.json's "lazy-dynamic-imports" makes `deno run` read and
 * parse a dynamically imported module only when it is imported (without it, it reads the whole graph up front).
 */
import { type Command, UsageError } from "./src/cli/command.ts";
import { VERSION, versionCommand } from "./src/cli/version.ts";
import { installSafetyNet } from "./src/util/safety_net.ts";

function usage(commands: Command[]): string {
  const width = Math.max(...commands.map((c) => c.name.length));
  const lines = commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`);
  return `wgedge ${VERSION} — userspace WireGuard edge\n\nUsage: wgedge <command> [flags]\n\nCommands:\n${
    lines.join("\n")
  }\n\nRun 'wgedge help <command>' (or 'wgedge <command> --help') for a command's flags.`;
}

export async function main(argv: string[]): Promise<number> {
  let [name, ...rest] = argv;
  // `wgedge help up` is `wgedge up --help`.
  if (name === "help" && rest.length > 0) [name, rest] = [rest[0], ["--help"]];
  if (name === "-V" || name === "--version") return await versionCommand.run([]);
  if (name === "version") return await runCommand(versionCommand, rest);
  const { commands } = await import("./src/cli/mod.ts");
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(usage(commands));
    return name === undefined ? 2 : 0;
  }
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    console.error(`wgedge: unknown command "${name}"\n\n${usage(commands)}`);
    return 2;
  }
  return await runCommand(cmd, rest);
}

/** Runs one command: a UsageError exits 2 with the usage line, any other error 1 with its message. */
async function runCommand(cmd: Command, rest: string[]): Promise<number> {
  try {
    return await cmd.run(rest);
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(
        `wgedge ${cmd.name}: ${e.message}\nUsage: wgedge ${cmd.usage}\nRun 'wgedge ${cmd.name} --help' for every flag.`,
      );
      return 2;
    }
    console.error(`wgedge ${cmd.name}: ${(e as Error).message ?? e}`);
    return 1;
  }
}

if (import.meta.main) {
  installSafetyNet();
  Deno.exit(await main(Deno.args));
}
