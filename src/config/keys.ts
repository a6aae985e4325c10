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

/** Longer paths are described, not printed: a message is one readable line. */
const MAX_SHOWN_PATH = 200;

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
 * `~/`), has a directory part, is neither key-length nor very long, and has no long base64 run. Anything
 * else stays hidden.
 */
export function isUnmistakablyPath(value: string): boolean {
  const t = value.trim();
  if (!/^(\/|\.\.?\/|~\/)/.test(t)) return false;
  if (t.lastIndexOf("/") <= 0 && !t.startsWith(".") && !t.startsWith("~")) return false;
  const n = charCount(t);
  // Key-length values are hidden whatever they look like; so are names too long to print usefully.
  if ((n >= 40 && n <= 48) || n > MAX_SHOWN_PATH) return false;
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
  let denied = false;
  try {
    info = v === "" ? undefined : await Deno.stat(v);
  } catch (e) {
    // Any other failure (no such file, a name too long, a NUL byte) means the value names no usable file.
    denied = e instanceof Deno.errors.PermissionDenied || e instanceof Deno.errors.NotCapable;
  }
  const showable = isUnmistakablyPath(v);
  if (!info && !denied) {
    // Neither: a mistyped key and a missing file look the same from here; say both, show neither.
    throw new ConfigError({
      ...at(origin),
      expected,
      gotDescription: showable ? `${JSON.stringify(v)}, which is not a key and names no file` : neither(v),
    });
  }
  // A name that exists on disk is a path, not a secret: naming it helps more than it could leak. A denied
  // stat proves less (a directory on the way exists), so then only an unmistakable path is shown.
  const fileProblem = (why: string, show: boolean) =>
    new ConfigError({
      ...at(origin),
      expected: `${expected} (${why})`,
      ...(show ? { got: v } : { gotDescription: `${describeBadKey(v)} (not shown)` }),
    });
  if (!info) throw fileProblem("permission denied", showable);
  if (!info.isFile) throw fileProblem("not a regular file", true);
  if (info.size > MAX_KEY_FILE_BYTES) {
    throw fileProblem(`larger than ${MAX_KEY_FILE_BYTES} bytes: not a key file`, true);
  }
  let text: string;
  try {
    text = new TextDecoder().decode(await Deno.readFile(v));
  } catch (e) {
    throw fileProblem(
      e instanceof Deno.errors.PermissionDenied ? "permission denied" : (e as Error).name,
      true,
    );
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
