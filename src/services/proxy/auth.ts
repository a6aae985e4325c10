/**
 * The one credential check both proxies use (SOCKS5 RFC 1929 and HTTP Basic): user and password compared as
 * bytes, in time independent of where they first differ, so a client cannot learn the password byte by byte.
 */
import type { ProxySpec } from "../../config/proxy.ts";

const encoder = new TextEncoder();

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a[i] ?? 0) ^ (b[i] ?? 0);
  return diff === 0;
}

export class Credentials {
  readonly #user: Uint8Array;
  readonly #password: Uint8Array;

  constructor(user: string, password: string) {
    this.#user = encoder.encode(user);
    this.#password = encoder.encode(password);
  }

  static of(spec: ProxySpec): Credentials | undefined {
    return spec.user === undefined ? undefined : new Credentials(spec.user, spec.password ?? "");
  }

  check(user: Uint8Array, password: Uint8Array): boolean {
    // Both compared always (no early exit on a wrong user).
    const u = sameBytes(user, this.#user);
    const p = sameBytes(password, this.#password);
    return u && p;
  }
}
