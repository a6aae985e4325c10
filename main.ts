/** wgedge — a userspace WireGuard edge. Entry point: dispatches to one command in src/cli/. */
import { commands } from "./src/cli/mod.ts";
import { UsageError } from "./src/cli/command.ts";
import { VERSION } from "./src/cli/version.ts";
import { installSafetyNet } from "./src/util/safety_net.ts";

function usage(): string {
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
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === "-V" || name === "--version") return await commands.find((c) => c.name === "version")!.run([]);
  const cmd = commands.find((c) => c.name === name);
  if (!cmd) {
    console.error(`wgedge: unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
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
