/**
 * The shape of a CLI command, its flag declarations, the flag parsing (node:util parseArgs, since JSR is
 * unreachable) and the help text.
 *
 * A command declares every flag once, as data (a FlagTable: type, short name, argument, default, environment
 * variable, help). The parser's options and the `--help` text are both derived from that table, so a flag
 * cannot be accepted without being documented, and help cannot describe a flag the parser does not take.
 */
import type { ParseArgsConfig } from "node:util";

export type FlagType = "string" | "boolean";

/** One flag, by its long name (the FlagTable key). */
export interface FlagSpec {
  type: FlagType;
  /** One-letter alias (`-c`). */
  short?: string;
  /** May be given more than once; the values arrive as an array, in order. */
  multiple?: boolean;
  /** What the value looks like in help (`FILE`, `N`, `HOST:PORT`); string flags only. */
  arg?: string;
  /**
   * The default as help shows it. It is documentation only: the parser leaves an absent flag undefined, so
   * the environment variable (flag > environment > env file > default) still decides.
   */
  default?: string;
  /** The environment variable (or env-file key) that sets the same thing. */
  env?: string;
  /** One line: what the flag does. */
  help: string;
}

export type FlagTable = Record<string, FlagSpec>;

/** A positional argument, for help. */
export interface ArgHelp {
  name: string;
  help: string;
}

export interface Command {
  name: string;
  /** One line, for `wgedge --help`. */
  summary: string;
  /** The synopsis after `wgedge ` (shown with misuse errors too). */
  usage: string;
  /** Every flag the command accepts besides -h/--help. */
  flags: FlagTable;
  /** Whether positional arguments are accepted (described by `args`). */
  positionals?: boolean;
  args?: ArgHelp[];
  /** Paragraphs printed after the flags (examples, how settings combine). */
  notes?: string[];
  run(args: string[]): Promise<number>;
}

/** Misuse of the command line: printed with the usage line, exit 2. */
export class UsageError extends Error {}

export type Options = NonNullable<ParseArgsConfig["options"]>;

type ValueOf<S extends FlagSpec> = S["type"] extends "boolean"
  ? (S["multiple"] extends true ? boolean[] : boolean)
  : (S["multiple"] extends true ? string[] : string);

/** Parsed flag values by long name; absent flags are undefined. */
export type FlagValues<F extends FlagTable> = { [K in keyof F]?: ValueOf<F[K]> };

export interface ParsedArgs<F extends FlagTable> {
  values: FlagValues<F>;
  positionals: string[];
}

/** Every command takes -h/--help. */
export const HELP_FLAG: FlagSpec = { type: "boolean", short: "h", help: "print this help and exit" };

/**
 * The node:util parseArgs options for a command: its flags plus --help. Throws when the declaration is
 * inconsistent (a short name used twice, a name that shadows --help): a programming error, caught by tests.
 */
export function parserOptions(cmd: Pick<Command, "name" | "flags">): Options {
  const options: Options = {};
  const shorts = new Map<string, string>();
  for (const [name, spec] of Object.entries({ ...cmd.flags, help: HELP_FLAG })) {
    if (name === "help" && spec !== HELP_FLAG) throw new Error(`${cmd.name}: --help is reserved`);
    if (spec.short !== undefined) {
      const other = shorts.get(spec.short);
      if (other !== undefined || spec.short.length !== 1) {
        throw new Error(`${cmd.name}: -${spec.short} declared for --${other ?? name} and --${name}`);
      }
      shorts.set(spec.short, name);
    }
    options[name] = spec.short !== undefined
      ? { type: spec.type, short: spec.short, multiple: spec.multiple ?? false }
      : { type: spec.type, multiple: spec.multiple ?? false };
  }
  return options;
}

/**
 * Parses args by the command's flag table; prints help and returns null for -h/--help. Unknown flags,
 * missing values and unexpected positionals become UsageError with parseArgs's message (which names the
 * flag). node:util is imported only when there is something to parse: it alone adds about 6 MiB and tens of
 * milliseconds to a command such as `wgedge version`.
 */
export async function parseFlags<F extends FlagTable>(
  cmd: Command & { flags: F },
  args: string[],
): Promise<ParsedArgs<F> | null> {
  parserOptions(cmd); // a declaration error shows even without arguments
  if (args.length === 0) return { values: {}, positionals: [] };
  const { parseArgs } = await import("node:util");
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: parserOptions(cmd),
      allowPositionals: cmd.positionals ?? false,
      strict: true,
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const values = parsed.values as Record<string, unknown>;
  if (values.help) {
    console.log(formatHelp(cmd));
    return null;
  }
  delete values.help;
  return { values: values as FlagValues<F>, positionals: parsed.positionals };
}

/** Help text is wrapped to this many columns. */
export const HELP_WIDTH = 100;
/** Flag names longer than this put their description on the next line. */
const MAX_FLAG_COLUMN = 30;

/** `-c, --config FILE` / `    --json`: how a flag is written, as the help's left column shows it. */
export function flagSynopsis(name: string, spec: FlagSpec): string {
  const short = spec.short !== undefined ? `-${spec.short}, ` : "    ";
  const arg = spec.type === "string" ? ` ${spec.arg ?? "VALUE"}` : "";
  return `${short}--${name}${arg}`;
}

/** Joins words that wrapping must keep on one line (`[env: WG_MTU]`); wrap() turns it back into a space. */
const KEEP_TOGETHER = "\u00a0";

/** The description column: the help line with [repeatable] [default: X] [env: NAME] after it. */
export function flagDescription(spec: FlagSpec): string {
  const parts = [spec.help];
  if (spec.multiple) parts.push("[repeatable]");
  if (spec.default !== undefined) parts.push(`[default: ${spec.default}]`);
  if (spec.env !== undefined) parts.push(`[env:${KEEP_TOGETHER}${spec.env}]`);
  return parts.join(" ");
}

/** Greedy word wrap; the first line has `first` columns, the rest `rest`. */
function wrap(text: string, first: number, rest: number): string[] {
  const lines: string[] = [];
  let line = "";
  let width = first;
  for (const word of text.split(/[ \t\r\n]+/).filter((w) => w !== "")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
      width = rest;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "" || lines.length === 0) lines.push(line);
  return lines.map((l) => l.replaceAll(KEEP_TOGETHER, " "));
}

/** Two-column rows (`  left  description`), the description wrapped with a hanging indent. */
function columns(rows: [string, string][]): string[] {
  const fitting = rows.map(([l]) => l.length).filter((n) => n <= MAX_FLAG_COLUMN);
  const col = Math.max(0, ...fitting);
  const indent = 2 + col + 2;
  const out: string[] = [];
  for (const [left, desc] of rows) {
    const pad = " ".repeat(indent);
    if (left.length > col) {
      out.push(`  ${left}`);
      for (const l of wrap(desc, HELP_WIDTH - indent, HELP_WIDTH - indent)) out.push(pad + l);
      continue;
    }
    const [head, ...tail] = wrap(desc, HELP_WIDTH - indent, HELP_WIDTH - indent);
    out.push(`  ${left.padEnd(col)}  ${head}`);
    for (const l of tail) out.push(pad + l);
  }
  return out;
}

/** The full `wgedge <command> --help` text. */
export function formatHelp(cmd: Command): string {
  const out = [cmd.summary, "", `Usage: wgedge ${cmd.usage}`];
  if (cmd.args && cmd.args.length > 0) {
    out.push("", "Arguments:", ...columns(cmd.args.map((a) => [a.name, a.help])));
  }
  const flags: [string, string][] = Object.entries({ ...cmd.flags, help: HELP_FLAG }).map((
    [name, spec],
  ) => [flagSynopsis(name, spec), flagDescription(spec)]);
  out.push("", "Flags:", ...columns(flags));
  for (const note of cmd.notes ?? []) out.push("", ...wrap(note, HELP_WIDTH, HELP_WIDTH));
  return out.join("\n");
}

/** What a command file writes: the Command without run(args), with run(parsed) typed by its own flags. */
export interface CommandSpec<F extends FlagTable> extends Omit<Command, "flags" | "run"> {
  flags: F;
  run(parsed: ParsedArgs<F>): Promise<number>;
}

/** A Command whose run parses argv by its declared flags (help and misuse handled) before calling spec.run. */
export function defineCommand<F extends FlagTable>(spec: CommandSpec<F>): Command {
  const cmd: Command & { flags: F } = {
    ...spec,
    async run(args: string[]): Promise<number> {
      const parsed = await parseFlags(cmd, args);
      if (!parsed) return 0;
      return await spec.run(parsed);
    },
  };
  return cmd;
}

/** Parses an integer flag within [min, max] or throws UsageError naming the flag. */
export function intFlag(
  name: string,
  value: string | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!/^-?\d+$/.test(value.trim())) throw new UsageError(`--${name}: expected an integer, got "${value}"`);
  const n = Number(value);
  if (n < min || n > max) throw new UsageError(`--${name}: expected ${min}..${max}, got ${n}`);
  return n;
}

/** Resolves when SIGINT or SIGTERM arrives (or the signal aborts). */
export function waitForShutdownSignal(): Promise<string> {
  return new Promise((resolve) => {
    const handlers: [Deno.Signal, () => void][] = [];
    for (const sig of ["SIGINT", "SIGTERM"] as Deno.Signal[]) {
      const h = () => {
        for (const [s, hh] of handlers) Deno.removeSignalListener(s, hh);
        resolve(sig);
      };
      handlers.push([sig, h]);
      Deno.addSignalListener(sig, h);
    }
  });
}
