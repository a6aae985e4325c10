/**
 * Configuration errors. Every problem names where it came from (a file path, an environment variable or a
 * flag), the 1-based line when there is one, the key, and what was expected, so an operator can fix it
 * without reading code. A loader collects every problem into one ConfigErrors instead of stopping at the
 * first: fixing a file one error per restart is miserable.
 *
 * Secrets: `got` is only ever set for non-secret values. Key fields (PrivateKey, PresharedKey, Obfs, tokens)
 * report what was wrong without echoing the value, and `got` is truncated so a pasted blob cannot flood a log.
 */

export interface ConfigErrorInit {
  /** File path, environment variable name (`WG_MTU`) or flag (`--config`). */
  source: string;
  /** 1-based line within `source`, when the source has lines. */
  line?: number;
  /** The key or field the value was given for (`Address`, `RELAY_3`). */
  key?: string;
  /** What a valid value looks like, phrased to follow "expected ". */
  expected: string;
  /** The offending value, shown quoted. Never pass a secret here. */
  got?: string;
  /**
   * Shown unquoted instead of `got`, for a value that must not be echoed: a description of it
   * (`a 12-character value that is neither`).
   */
  gotDescription?: string;
}

/** Longest `got` shown verbatim; longer values are cut with an ellipsis. */
const MAX_SHOWN_VALUE = 80;

/**
 * Last line of defence for values given to the wrong setting (a whole wg-quick file pasted into WG_MTU):
 * anything key-shaped (a WireGuard key, or a 40+ character base64/hex run like a token) is hidden, and multi-line values are not shown at all.
 */
const KEY_SHAPED = /[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=|[A-Za-z0-9+_-]{40,}={0,2}/g;

/** The `got` text safe to print: quoted, secrets-shaped runs hidden, truncated. */
export function safeShownValue(value: string): string {
  if (/[\r\n]/.test(value)) return "a multi-line value (not shown)";
  const hidden = value.replace(KEY_SHAPED, "[key-like text hidden]");
  const shown = hidden.length > MAX_SHOWN_VALUE ? hidden.slice(0, MAX_SHOWN_VALUE) + "…" : hidden;
  return JSON.stringify(shown);
}

/** `source:line: key: expected X, got "Y"` with absent parts left out. */
export function formatConfigProblem(p: ConfigErrorInit): string {
  let where = p.source;
  if (p.line !== undefined) where += `:${p.line}`;
  const key = p.key ? `${p.key}: ` : "";
  const got = p.gotDescription !== undefined
    ? `, got ${p.gotDescription}`
    : p.got !== undefined
    ? `, got ${safeShownValue(p.got)}`
    : "";
  return `${where}: ${key}expected ${p.expected}${got}`;
}

export class ConfigError extends Error {
  readonly source: string;
  readonly line?: number;
  readonly key?: string;
  readonly expected: string;
  /**
   * The offending value as shown in the message (quoted, key-shaped text hidden), or the description shown
   * instead of it, when one was given.
   */
  readonly got?: string;

  constructor(init: ConfigErrorInit) {
    super(formatConfigProblem(init));
    this.name = "ConfigError";
    this.source = init.source;
    this.line = init.line;
    this.key = init.key;
    this.expected = init.expected;
    this.got = init.gotDescription ?? (init.got !== undefined ? safeShownValue(init.got) : undefined);
  }
}

/** Every problem found in one load, in the order they were found. Never empty. */
export class ConfigErrors extends Error {
  readonly errors: ConfigError[];
  /** The warnings of the same load (an unknown key is often why a required one is missing): show both. */
  readonly warnings: string[] = [];

  constructor(errors: ConfigError[]) {
    const list = errors.length > 0
      ? errors
      : [new ConfigError({ source: "config", expected: "a valid config" })];
    super(list.map((e) => e.message).join("\n"));
    this.name = "ConfigErrors";
    this.errors = list;
  }

  /** Flattens ConfigError/ConfigErrors into a list; anything else is not a config problem and is rethrown. */
  static flatten(e: unknown): ConfigError[] {
    if (e instanceof ConfigErrors) return e.errors;
    if (e instanceof ConfigError) return [e];
    throw e;
  }
}

/**
 * Collects problems while parsing. `fail()` at the end throws ConfigErrors when anything was collected.
 * Warnings are strings in the same `source:line: key: ...` shape.
 */
export class ProblemCollector {
  readonly errors: ConfigError[] = [];

  constructor(readonly warnings: string[] = []) {}

  error(init: ConfigErrorInit): void {
    this.errors.push(new ConfigError(init));
  }

  /** Runs fn and records any ConfigError/ConfigErrors it throws; other exceptions propagate. */
  capture<T>(fn: () => T): T | undefined {
    try {
      return fn();
    } catch (e) {
      this.errors.push(...ConfigErrors.flatten(e));
      return undefined;
    }
  }

  warn(source: string, line: number | undefined, message: string): void {
    this.warnings.push(`${source}${line !== undefined ? `:${line}` : ""}: ${message}`);
  }

  get ok(): boolean {
    return this.errors.length === 0;
  }

  throwIfAny(): void {
    if (this.errors.length > 0) throw new ConfigErrors(this.errors);
  }
}
