/** Minimal assertions (JSR's @std/assert is unreachable from these machines). */
export class AssertionError extends Error {}

export function assert(cond: unknown, msg = "assertion failed"): asserts cond {
  if (!cond) throw new AssertionError(msg);
}

function show(v: unknown): string {
  if (v instanceof Uint8Array) {
    return `Uint8Array(${v.length})[${Array.from(v.slice(0, 32)).join(",")}${v.length > 32 ? ",…" : ""}]`;
  }
  try {
    return JSON.stringify(v, (_k, x) => typeof x === "bigint" ? x.toString() + "n" : x);
  } catch {
    return String(v);
  }
}

export function equal(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (a instanceof Uint8Array && b instanceof Uint8Array) {
    if (a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length && a.every((x, i) => equal(x, b[i]));
  if (a && b && typeof a === "object" && typeof b === "object") {
    if (a instanceof Map && b instanceof Map) return equal([...a.entries()], [...b.entries()]);
    const ka = Object.keys(a), kb = Object.keys(b);
    return ka.length === kb.length &&
      ka.every((k) => equal((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return false;
}

export function assertEquals<T>(actual: T, expected: T, msg?: string): void {
  if (!equal(actual, expected)) {
    throw new AssertionError(`${msg ? msg + ": " : ""}expected ${show(expected)}, got ${show(actual)}`);
  }
}

export function assertNotEquals<T>(actual: T, expected: T, msg?: string): void {
  if (equal(actual, expected)) {
    throw new AssertionError(`${msg ? msg + ": " : ""}expected not ${show(expected)}`);
  }
}

export function assertStringIncludes(actual: string, expected: string, msg?: string): void {
  if (!actual.includes(expected)) {
    throw new AssertionError(`${msg ? msg + ": " : ""}expected ${show(actual)} to include ${show(expected)}`);
  }
}

export function assertMatch(actual: string, re: RegExp, msg?: string): void {
  if (!re.test(actual)) {
    throw new AssertionError(`${msg ? msg + ": " : ""}expected ${show(actual)} to match ${re}`);
  }
}

export function assertThrows(fn: () => unknown, includes?: string): Error {
  try {
    fn();
  } catch (e) {
    if (includes && !String((e as Error).message).includes(includes)) {
      throw new AssertionError(
        `expected error including ${show(includes)}, got ${show((e as Error).message)}`,
      );
    }
    return e as Error;
  }
  throw new AssertionError("expected function to throw");
}

export async function assertRejects(fn: () => Promise<unknown>, includes?: string): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    if (includes && !String((e as Error).message).includes(includes)) {
      throw new AssertionError(
        `expected rejection including ${show(includes)}, got ${show((e as Error).message)}`,
      );
    }
    return e as Error;
  }
  throw new AssertionError("expected promise to reject");
}
