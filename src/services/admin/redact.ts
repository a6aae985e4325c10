/**
 * Last line of defence for the admin outputs: any field whose name looks secret is replaced, and any
 * `scheme://user:pass@` credentials inside strings are masked. Services already avoid putting secrets in
 * their status; this makes a slip in one of them harmless.
 */
export const SECRET_KEY = /(private|secret|password|passwd|pass$|token|psk|presharedkey|credential|auth)/i;
const URL_CREDENTIALS = /([a-z][a-z0-9+.-]*:\/\/)[^@/\s"]*@/gi;

export function redactString(s: string): string {
  return s.replace(URL_CREDENTIALS, "$1[redacted]@");
}

export function redactDeep(v: unknown, depth = 0): unknown {
  if (depth > 32) return "[too deep]";
  if (typeof v === "string") return redactString(v);
  if (typeof v === "bigint") return v.toString();
  if (Array.isArray(v)) return v.map((x) => redactDeep(x, depth + 1));
  if (v && typeof v === "object") {
    if (v instanceof Uint8Array) return `[${v.length} bytes]`;
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      out[k] = SECRET_KEY.test(k) ? "[redacted]" : redactDeep(x, depth + 1);
    }
    return out;
  }
  return v;
}
