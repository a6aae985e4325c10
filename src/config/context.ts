/**
 * What a section loader sees: every setting with its provenance, resolved by the one precedence rule
 * (command-line flag > environment variable > env file > the section's default), plus helpers that turn a bad
 * value into a ConfigError naming the flag, variable or env-file line. Problems are collected here so one run
 * reports all of them.
 */
import type { WgConfig } from "../wireguard/config.ts";
import { ConfigError, type ConfigErrorInit, ConfigErrors, ProblemCollector } from "./errors.ts";
import type { EnvFileEntry } from "./envfile.ts";
import { isWorldAccessible, parseWgText, readValue, worldAccessibleWarning } from "./source.ts";

export type Flags = Record<string, string | boolean | string[] | undefined>;

/** One resolved value and where it came from. */
export interface Setting {
  /** The environment variable this setting is known by (`WG_MTU`), also for flag-given values. */
  name: string;
  value: string;
  from: "flag" | "env" | "envfile";
  /** What messages name: `--mtu`, `WG_MTU`, or the env-file path. */
  source: string;
  /** Env-file line. */
  line?: number;
  /** The variable name when `source` is the env file. */
  key?: string;
}

export class LoadContext {
  readonly problems: ProblemCollector;
  private readonly used = new Set<string>();

  constructor(
    private readonly env: Record<string, string | undefined>,
    private readonly envFile: Map<string, EnvFileEntry>,
    private readonly envFilePath: string | undefined,
    private readonly flags: Flags,
    readonly warnings: string[],
  ) {
    this.problems = new ProblemCollector(warnings);
  }

  /**
   * The value of a setting: flag `--<flagName>` when given, else environment variable `name`, else the env
   * file. Empty values count as unset (container tools often pass `VAR=`). A repeated string flag uses its
   * last value unless `joinFlag` is set, in which case the values are joined with commas.
   */
  setting(name: string, flagName?: string, joinFlag = false): Setting | undefined {
    // Asked for, even when a flag answers: an env-file line the flag overrides is not a typo.
    this.used.add(name);
    if (flagName !== undefined) {
      const f = this.flags[flagName];
      let v: string | undefined;
      if (typeof f === "string") v = f;
      else if (Array.isArray(f) && f.length > 0) v = joinFlag ? f.join(",") : f[f.length - 1];
      if (v !== undefined && v.trim() !== "") {
        return { name, value: v, from: "flag", source: `--${flagName}` };
      }
    }
    return this.envSetting(name);
  }

  /** Every value of a repeatable string flag (`-r A -r B`), in order; [] when absent. */
  flagValues(flagName: string): string[] {
    const f = this.flags[flagName];
    if (typeof f === "string") return [f];
    return Array.isArray(f) ? f.filter((v) => v.trim() !== "") : [];
  }

  /** A variable from the environment or the env file (the environment wins). */
  envSetting(name: string): Setting | undefined {
    this.used.add(name);
    const real = this.env[name];
    if (real !== undefined && real.trim() !== "") return { name, value: real, from: "env", source: name };
    const entry = this.envFile.get(name);
    if (entry !== undefined && entry.value.trim() !== "") {
      return {
        name,
        value: entry.value,
        from: "envfile",
        source: this.envFilePath!,
        line: entry.line,
        key: name,
      };
    }
    return undefined;
  }

  /** Every set variable whose name starts with `prefix`, sorted by name; the environment wins per name. */
  envWithPrefix(prefix: string): Setting[] {
    const names = new Set<string>();
    for (const n of Object.keys(this.env)) if (n.startsWith(prefix)) names.add(n);
    for (const n of this.envFile.keys()) if (n.startsWith(prefix)) names.add(n);
    const out: Setting[] = [];
    for (const n of [...names].sort()) {
      const s = this.envSetting(n);
      if (s) out.push(s);
    }
    return out;
  }

  /**
   * Set variables whose name starts with `prefix` in any case but does not match `accept` (`RELAY_X`,
   * `relay_2` for RELAY_N): a section reports them as typos instead of ignoring them silently. The environment
   * wins per name; the names count as used, so the env-file check does not report them twice.
   */
  strayWithPrefix(prefix: string, accept: RegExp): Setting[] {
    const lower = prefix.toLowerCase();
    const names = new Set<string>();
    for (const n of [...Object.keys(this.env), ...this.envFile.keys()]) {
      if (n.toLowerCase().startsWith(lower) && !accept.test(n)) names.add(n);
    }
    const out: Setting[] = [];
    for (const n of [...names].sort()) {
      const s = this.envSetting(n);
      if (s) out.push(s);
    }
    return out;
  }

  /** Records a problem with a setting: `source[:line]: [key: ]expected ..., got "..."`. */
  error(s: Setting, expected: string, got?: string): void {
    this.problems.error({ source: s.source, line: s.line, key: s.key, expected, got });
  }

  /** Records a problem not tied to one setting. */
  errorAt(init: ConfigErrorInit): void {
    this.problems.error(init);
  }

  warn(s: Setting | undefined, message: string): void {
    if (!s) this.warnings.push(message);
    else this.problems.warn(s.source, s.line, `${s.key ? `${s.key}: ` : ""}${message}`);
  }

  /** Runs fn, recording any ConfigError/ConfigErrors it throws; returns undefined in that case. */
  async capture<T>(fn: () => Promise<T> | T): Promise<T | undefined> {
    try {
      return await fn();
    } catch (e) {
      this.problems.errors.push(...ConfigErrors.flatten(e));
      return undefined;
    }
  }

  /** An integer setting within [min, max]. */
  int(s: Setting, min: number, max: number, what = "an integer"): number | undefined {
    const t = s.value.trim();
    if (/^[0-9]{1,15}$/.test(t)) {
      const n = Number(t);
      if (n >= min && n <= max) return n;
    }
    this.error(s, `${what} ${min}..${max}`, s.value);
    return undefined;
  }

  /** One of `choices`, matched case-insensitively; returns the canonical choice. */
  oneOf<T extends string>(s: Setting, choices: readonly T[]): T | undefined {
    const t = s.value.trim().toLowerCase();
    const hit = choices.find((c) => c.toLowerCase() === t);
    if (hit === undefined) this.error(s, `one of ${choices.join(", ")}`, s.value);
    return hit;
  }

  /** A WireGuard config (INI or pipe form) given inline or as a path by this setting. */
  async wgConfig(s: Setting): Promise<WgConfig | undefined> {
    const found: string[] = [];
    try {
      const { text, source, path } = await readValue(s.value, s);
      const cfg = parseWgText(text, source, found);
      if (path !== undefined && await isWorldAccessible(path)) {
        this.warnings.push(worldAccessibleWarning(path));
      }
      return cfg;
    } catch (e) {
      this.problems.errors.push(...this.inEnvFile(s, e));
      return undefined;
    } finally {
      this.addWarningsOf(s, found);
    }
  }

  /**
   * Adds warnings about a config inside `s` to this load's; for an env-file value given inline they are
   * re-pointed at the env file's line like inEnvFile does for errors (`wgedge.env:4: WG_TUNNEL_A line 3, ...`).
   */
  addWarningsOf(s: Setting, warnings: string[]): void {
    if (s.from !== "envfile") {
      this.warnings.push(...warnings);
      return;
    }
    const multiLine = /[\r\n]/.test(s.value);
    const prefix = new RegExp(`^${s.name}(?::(\\d+))?: `);
    for (const w of warnings) {
      const m = prefix.exec(w);
      const inner = m?.[1] !== undefined && multiLine ? ` line ${m[1]}` : "";
      this.warnings.push(m ? `${s.source}:${s.line}: ${s.name}${inner}, ${w.slice(m[0].length)}` : w);
    }
  }

  /**
   * The errors `e` holds, with those found inside an env-file value given inline (a whole wg-quick or JSON5
   * config: their source is the variable, their line one of the value) pointed at the env file's line; the
   * value's own line stays in the key (`WG_TUNNEL_A line 5, MTU`). Anything not a config error is rethrown.
   */
  inEnvFile(s: Setting, e: unknown): ConfigError[] {
    const errors = ConfigErrors.flatten(e);
    if (s.from !== "envfile") return errors;
    return errors.map((x) =>
      x.source !== s.name ? x : new ConfigError({
        source: s.source,
        line: s.line,
        key: [s.name + (x.line !== undefined && /[\r\n]/.test(s.value) ? ` line ${x.line}` : ""), x.key]
          .filter(Boolean).join(", "),
        expected: x.expected,
        gotDescription: x.got,
      })
    );
  }

  /** Warns about env-file variables no section asked for: usually a typo. */
  warnUnusedEnvFileEntries(): void {
    for (const [name, entry] of this.envFile) {
      if (!this.used.has(name)) {
        this.problems.warn(this.envFilePath!, entry.line, `${name} is not a wgedge setting (typo?); ignored`);
      }
    }
  }
}
