/**
 * Admin authentication: a bearer token (`WGEDGE_ADMIN_TOKEN`), also accepted as the password of HTTP Basic
 * auth so a browser can open the dashboard (it prompts natively and then sends the credentials on the
 * page's own requests). Comparison is constant-time over SHA-256 digests, so neither the token's content nor
 * its length leaks through timing.
 */
import { sha256 } from "@noble/hashes/sha2.js";

const enc = new TextEncoder();

export function constantTimeEqual(a: string, b: string): boolean {
  const da = sha256(enc.encode(a));
  const db = sha256(enc.encode(b));
  let diff = 0;
  for (let i = 0; i < da.length; i++) diff |= da[i] ^ db[i];
  return diff === 0;
}

/** Extracts the presented secret from an Authorization header (Bearer token, or Basic password). */
export function presentedToken(header: string | undefined | null): string | undefined {
  if (!header) return undefined;
  const m = /^\s*(\S+)\s+(\S+)\s*$/.exec(header);
  if (!m) return undefined;
  const scheme = m[1].toLowerCase();
  if (scheme === "bearer") return m[2];
  if (scheme === "basic") {
    try {
      const decoded = new TextDecoder().decode(Uint8Array.from(atob(m[2]), (c) => c.charCodeAt(0)));
      const colon = decoded.indexOf(":");
      return colon < 0 ? undefined : decoded.slice(colon + 1);
    } catch {
      return undefined;
    }
  }
  return undefined;
}

export function isAuthorized(header: string | undefined | null, token: string): boolean {
  const given = presentedToken(header);
  // Compare even when nothing was presented so the two paths take the same time.
  return constantTimeEqual(given ?? "", token) && given !== undefined;
}

/** True for loopback listen addresses (127.0.0.0/8, ::1, localhost), where no token is required. */
export function isLoopbackHost(host: string): boolean {
  const h = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
  if (h.toLowerCase() === "localhost") return true;
  if (/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)) return true;
  if (/^::ffff:127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/i.test(h)) return true;
  return h === "::1" || /^0*:0*:0*:0*:0*:0*:0*:0*1$/.test(h);
}
