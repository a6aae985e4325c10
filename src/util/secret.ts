/**
 * THE rule for what is secret, applied to every output: log fields (nested too, src/util/log.ts), status JSON
 * and metrics (src/services/admin/app.ts), `check-config` (src/config/redact.ts) and error text.
 *
 * A value is hidden when its field name matches SECRET_FIELD (anywhere in a nested object, Map or array), and
 * the user-info of a URL inside any string (`socks5://user:pass@host`) is cut. It lives in src/util/ because
 * the logger, the lowest layer that needs it, is here. Name secret fields so that they match: privateKey,
 * presharedKey, obfs, token, password, sourcePassword, secret, credentials...
 * (tests/secret_rule_test.ts loads a config with every secret set and checks each output.)
 */
import { toBase64 } from "./bytes.ts";

export const REDACTED = "[redacted]";

/** Field names whose values are secrets. Matched against the field name, case-insensitively. */
export const SECRET_FIELD =
  /(private|secret|password|passwd|pass$|passphrase|token|psk|preshared|obfs|credential|apikey|api_key|authorization)/i;

const URL_USERINFO = /([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s/@"]*@/g;

export function isSecretField(name: string): boolean {
  return SECRET_FIELD.test(name);
}

/** Cuts `scheme://user:password@` (or a token as the user) down to `scheme://[redacted]@`. */
export function redactUrlCredentials(text: string): string {
  return text.replace(URL_USERINFO, `$1${REDACTED}@`);
}

export interface RedactOptions {
  /**
   * How byte arrays are shown: "base64" (check-config, where the only bytes left are public keys: secret ones
   * are under secret names) or "length" (status and logs: `[32 bytes]`). Default "length".
   */
  bytes?: "base64" | "length";
}

/**
 * A JSON-able copy of `value` with every secret-named field replaced by "[redacted]" at any depth, URL
 * credentials cut from strings, Maps as objects, Sets as arrays, bigints as text, Errors as their message.
 */
export function redactDeep(value: unknown, opts: RedactOptions = {}): unknown {
  return walk(value, opts, new WeakSet(), 0);
}

function walk(value: unknown, opts: RedactOptions, seen: WeakSet<object>, depth: number): unknown {
  if (value === null || value === undefined) return value;
  if (typeof value === "string") return redactUrlCredentials(value);
  if (typeof value === "number" || typeof value === "boolean") return value;
  if (typeof value === "bigint") return value.toString();
  if (typeof value !== "object") return undefined;
  if (depth > 32) return "[too deep]";
  if (value instanceof Uint8Array) {
    return opts.bytes === "base64" ? toBase64(value) : `[${value.length} bytes]`;
  }
  if (value instanceof Date) return value.toISOString();
  if (value instanceof Error) return redactUrlCredentials(value.message);
  if (seen.has(value)) return "[cycle]";
  seen.add(value);
  try {
    const entry = (k: string, v: unknown) => isSecretField(k) ? REDACTED : walk(v, opts, seen, depth + 1);
    if (Array.isArray(value)) return value.map((v) => walk(v, opts, seen, depth + 1));
    if (value instanceof Set) return [...value].map((v) => walk(v, opts, seen, depth + 1));
    const out: Record<string, unknown> = {};
    const entries = value instanceof Map
      ? [...value].map(([k, v]) => [String(k), v] as const)
      : Object.entries(value);
    for (const [k, v] of entries) {
      if (v === undefined || typeof v === "function") continue;
      out[k] = entry(k, v);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}
