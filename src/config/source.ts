/**
 * "Inline or file": every config value may be the content itself (env-only deployments, containers) or a
 * path to a file holding it. The value is content when it obviously is (a newline, an `[Interface]` header or
 * the `|` of the pipe form); otherwise it is a path.
 */
import type { WgConfig } from "../wireguard/config.ts";
import { ConfigError } from "./errors.ts";
import { looksLikePipeForm, parsePipeForm } from "./pipe.ts";
import { parseWgQuick } from "./wgquick.ts";

/** Config files are small; anything bigger is a wrong path (a log, a disk image), not a config. */
export const MAX_CONFIG_FILE_BYTES = 1 << 20;

/**
 * Where a value came from, for messages: a variable or flag name, or an env-file path with the line and the
 * variable name.
 */
export interface Origin {
  source: string;
  line?: number;
  key?: string;
}

function toOrigin(o: string | Origin): Origin {
  // Copied field by field: a caller's object may carry the value itself, which must not travel further.
  return typeof o === "string" ? { source: o } : { source: o.source, line: o.line, key: o.key };
}

export interface ValueText {
  text: string;
  /** What messages should name: the file path when read from a file, else the variable/flag name. */
  source: string;
  /** The file path when the value was a path. */
  path?: string;
}

/** True when `value` is config content rather than a path. */
export function looksLikeContent(value: string): boolean {
  return /[\r\n]/.test(value) || /\[\s*interface\s*\]/i.test(value) || value.includes("|");
}

/**
 * A value taken for a path is echoed only when it reads like one (a directory part or a config file
 * extension, no long base64 run): a secret pasted with a typo, or a key, is described instead.
 */
function showablePath(value: string): string | undefined {
  const t = value.trim();
  const pathLike = t.includes("/") || /\.(conf|json5?|env|ini|txt|key)$/i.test(t);
  if (!pathLike || t.length > 200 || /[A-Za-z0-9+]{20,}/.test(t)) return undefined;
  return value;
}

/**
 * Returns the content of `value`: itself when it looks like content, else the file it names.
 * `sourceName` is the variable or flag the value came from; a missing or unreadable file is a ConfigError
 * naming it and the path.
 */
export async function readValue(value: string, sourceName: string | Origin): Promise<ValueText> {
  const origin = toOrigin(sourceName);
  // Inline content is named by its variable; its own line numbers follow in messages.
  if (looksLikeContent(value)) return { text: value, source: origin.key ?? origin.source };
  const path = value.trim();
  return { text: await readConfigFile(path, origin), source: path, path };
}

/**
 * Reads a small UTF-8 config file. Failures are ConfigErrors naming `sourceName` (the variable or flag that
 * gave the path) and the path, unless the path looks like a key, which is then not shown.
 */
export async function readConfigFile(path: string, sourceName: string | Origin): Promise<string> {
  const origin = toOrigin(sourceName);
  const shown = showablePath(path);
  const fail = (why: string) =>
    new ConfigError({
      ...origin,
      expected: `inline config content or the path of a readable file (${why})`,
      ...(shown !== undefined ? { got: shown } : {
        gotDescription: `a ${path.trim().length}-character value (not shown: it does not read like a path)`,
      }),
    });
  if (path === "") throw fail("empty");
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      // A relative path is read from the working directory, not the env file's: under systemd that is
      // WorkingDirectory (/var/lib/wgedge), so say where it was looked for.
      throw fail(
        path.startsWith("/") ? "no such file" : `no such file in the current directory ${Deno.cwd()}`,
      );
    }
    if (e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable) {
      throw fail("permission denied");
    }
    throw fail((e as Error).name);
  }
  if (!info.isFile) throw fail("not a regular file");
  if (info.size > MAX_CONFIG_FILE_BYTES) throw fail(`larger than ${MAX_CONFIG_FILE_BYTES} bytes`);
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    throw fail(e instanceof Deno.errors.PermissionDenied ? "permission denied" : (e as Error).name);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    throw new ConfigError({ source: path, expected: "UTF-8 text" });
  }
}

/**
 * True when others (not owner or group) may read or write `path`. wg-quick warns about such files because
 * they hold private keys; so does the loader. False when the platform has no modes or the stat fails.
 */
export async function isWorldAccessible(path: string): Promise<boolean> {
  try {
    const { mode } = await Deno.stat(path);
    return mode !== null && (mode & 0o007) !== 0;
  } catch {
    return false;
  }
}

export function worldAccessibleWarning(path: string): string {
  return `${path}: holds secrets but is accessible to every user of this machine; chmod 600 it`;
}

/** Parses WireGuard config text in either format: the pipe form when it is one `|` line, else INI. */
export function parseWgText(text: string, source: string, warnings: string[] = []): WgConfig {
  return looksLikePipeForm(text) ? parsePipeForm(text, source) : parseWgQuick(text, source, warnings);
}

/** readValue + parseWgText: a WireGuard config given inline (INI or pipe form) or as a path. */
export async function parseWgAny(
  value: string,
  sourceName: string | Origin,
  warnings: string[] = [],
): Promise<WgConfig> {
  const { text, source } = await readValue(value, sourceName);
  return parseWgText(text, source, warnings);
}
