/**
 * Key values in configuration: what a bad one is reported as. A key is a secret (or, for PublicKey, at least
 * something nobody wants pasted into a log next to a typo), so a message never shows the value: it says what
 * was expected and describes what was given (its length and what is wrong with its shape), which is enough to
 * spot a truncated paste, a stray space or a value put into the wrong variable.
 */
import { decodeKey } from "../crypto/x25519.ts";
import { ConfigError, type ConfigErrorInit } from "./errors.ts";
import type { Origin } from "./source.ts";

/** What a WireGuard key looks like, phrased to follow "expected ". */
export const KEY_EXPECTED = 'a base64 WireGuard key (44 characters ending in "=", as printed by `wg genkey`)';

/** A key file is one line; anything much bigger is the wrong file (a wg-quick config, a log). */
export const MAX_KEY_FILE_BYTES = 4096;

const BASE64_CHARS = /^[A-Za-z0-9+/=]*$/;

/** Characters, not UTF-16 units: a pasted non-ASCII character counts once. */
function charCount(text: string): number {
  return [...text].length;
}

/** The length of a bad key value and what is wrong with its shape, never any of its characters. */
function keyShape(value: string): { size: string; problem?: string } {
  const t = value.trim();
  if (t === "") return { size: "an empty value" };
  if (/[\r\n]/.test(t)) return { size: `a multi-line value (${t.split(/\r\n|\r|\n/).length} lines)` };
  const n = charCount(t);
  const article = String(n).startsWith("8") || n === 11 || n === 18 ? "an" : "a";
  const size = `${article} ${n}-character value`;
  if (/\s/.test(t)) return { size, problem: "with whitespace inside" };
  if (!BASE64_CHARS.test(t)) return { size, problem: "with characters outside base64 (A-Z a-z 0-9 + / =)" };
  if (n === 44 && !t.endsWith("=")) return { size, problem: 'not ending in "="' };
  if (n === 44) return { size, problem: "not encoding 32 bytes" };
  return { size };
}

/**
 * Describes a value that is not a valid key without showing any of it, phrased to follow "got ":
 * `a 43-character value`, `a 45-character value with whitespace inside`, `an empty value`, ...
 */
export function describeBadKey(value: string): string {
  const { size, problem } = keyShape(value);
  return problem ? `${size} ${problem}` : size;
}

/** Decodes a key or returns undefined; no message, no echo. */
export function tryDecodeKey(text: string): Uint8Array | undefined {
  try {
    return decodeKey(text);
  } catch {
    return undefined;
  }
}

/** A ConfigError for a bad key field (INI line, pipe field): the expectation and a description of the value. */
export function badKeyError(at: Omit<ConfigErrorInit, "expected" | "got" | "gotDescription">, value: string) {
  return new ConfigError({ ...at, expected: KEY_EXPECTED, gotDescription: describeBadKey(value) });
}

/**
 * A path shown in a message only when it cannot be a mistyped key: it starts like a path (`/`, `./`, `../`,
 * `~/`), has a directory part, is not key-length and has no long base64 run. Anything else stays hidden.
 */
export function isUnmistakablyPath(value: string): boolean {
  const t = value.trim();
  if (!/^(\/|\.\.?\/|~\/)/.test(t)) return false;
  if (t.lastIndexOf("/") <= 0 && !t.startsWith(".") && !t.startsWith("~")) return false;
  const n = charCount(t);
  if (n >= 40 && n <= 48) return false;
  return !/[A-Za-z0-9+]{20,}/.test(t);
}

/** `a 12-character value that is neither`, with what is wrong with its shape when that is known. */
function neither(value: string): string {
  const { size, problem } = keyShape(value);
  return problem ? `${size} that is neither (${problem})` : `${size} that is neither`;
}

/** Where a key setting came from, for messages. */
function at(origin: Origin): Omit<ConfigErrorInit, "expected"> {
  return { source: origin.source, line: origin.line, key: origin.key };
}

export interface KeyOrFileResult {
  key?: Uint8Array;
  /** The file the key was read from, when it was a path. */
  path?: string;
}

/**
 * A setting whose value is a key itself or the path of a file holding one (WG_PRIVATE_KEY, like
 * `wg set ... private-key FILE`). Throws a ConfigError that names `origin` and says which of the two was
 * expected; the value is shown only when it is unmistakably a path to a file that cannot be used.
 */
export async function readKeyOrKeyFile(value: string, origin: Origin): Promise<KeyOrFileResult> {
  const v = value.trim();
  const key = tryDecodeKey(v);
  if (key) return { key };
  const expected = `${KEY_EXPECTED} or the path of a file containing one`;
  let info: Deno.FileInfo | undefined;
  let statFailure: string | undefined;
  try {
    info = v === "" ? undefined : await Deno.stat(v);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory)) {
      statFailure = e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable
        ? "permission denied"
        : (e as Error).name;
    }
  }
  if (!info && statFailure === undefined) {
    // Neither: a mistyped key and a missing file look the same from here; say both, show neither.
    const shown = isUnmistakablyPath(v) ? `${JSON.stringify(v)}, which is not a key and names no file` : "";
    throw new ConfigError({
      ...at(origin),
      expected,
      gotDescription: shown || neither(v),
    });
  }
  // The name exists on disk, so it is a path, not a secret: naming it helps more than it could leak.
  const fileProblem = (why: string) =>
    new ConfigError({ ...at(origin), expected: `${expected} (${why})`, got: v });
  if (statFailure !== undefined) throw fileProblem(statFailure);
  if (!info!.isFile) throw fileProblem("not a regular file");
  if (info!.size > MAX_KEY_FILE_BYTES) {
    throw fileProblem(`larger than ${MAX_KEY_FILE_BYTES} bytes: not a key file`);
  }
  let text: string;
  try {
    text = new TextDecoder().decode(await Deno.readFile(v));
  } catch (e) {
    throw fileProblem(e instanceof Deno.errors.PermissionDenied ? "permission denied" : (e as Error).name);
  }
  const fromFile = tryDecodeKey(text);
  if (fromFile) return { key: fromFile, path: v };
  throw new ConfigError({
    source: v,
    key: origin.key ?? origin.source,
    expected: `the file to contain ${KEY_EXPECTED}`,
    gotDescription: describeBadKey(text),
  });
}
