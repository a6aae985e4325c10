/**
 * The effective config as JSON-able data with every secret replaced by "[redacted]", for `check-config`,
 * status JSON and logs.
 *
 * It walks any shape rather than knowing each section, so a section added later is covered without touching
 * this file, as long as its secret fields are named like secrets (see SECRET_FIELD: privateKey, presharedKey,
 * obfs, token, password, secret, ...). Name new secret fields accordingly. Key bytes that are not secret
 * (public keys) are shown in base64; Maps become objects; credentials inside URLs (`user:pass@`) are cut.
 */
import { toBase64 } from "../util/bytes.ts";

export const REDACTED = "[redacted]";

/** Field names whose values are secrets. Matched against the field name, case-insensitively. */
export const SECRET_FIELD =
  /(private|secret|password|passwd|^pass$|pass$|passphrase|token|psk|preshared|obfs|credential|apikey|api_key)/i;

const URL_USERINFO = /([A-Za-z][A-Za-z0-9+.-]*:\/\/[^\s/:@]*:)[^\s/@]*@/g;

export function isSecretField(name: string): boolean {
  return SECRET_FIELD.test(name);
}

/** Cuts `scheme://user:password@` down to `scheme://user:[redacted]@`. */
export function redactUrlCredentials(text: string): string {
  return text.replace(URL_USERINFO, `$1${REDACTED}@`);
}

function walk(value: unknown, seen: WeakSet<object>): unknown {
  if (value === null || value === undefined) return value;
  if (typeof value === "string") return redactUrlCredentials(value);
  if (typeof value === "number" || typeof value === "boolean") return value;
  if (typeof value === "bigint") return value.toString();
  if (typeof value !== "object") return undefined;
  if (value instanceof Uint8Array) return toBase64(value);
  if (value instanceof Date) return value.toISOString();
  if (seen.has(value)) return "[cycle]";
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => walk(v, seen));
    if (value instanceof Map) {
      const out: Record<string, unknown> = {};
      for (const [k, v] of value) out[String(k)] = isSecretField(String(k)) ? REDACTED : walk(v, seen);
      return out;
    }
    if (value instanceof Set) return [...value].map((v) => walk(v, seen));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      if (v === undefined || typeof v === "function") continue;
      out[k] = isSecretField(k) ? REDACTED : walk(v, seen);
    }
    return out;
  } finally {
    seen.delete(value);
  }
}

/** JSON-able copy of `config` with secrets replaced by "[redacted]" and public keys in base64. */
export function redactConfig(config: unknown): unknown {
  return walk(config, new WeakSet());
}
