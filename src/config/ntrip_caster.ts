/**
 * The NTRIP caster section (shared/spec/ntrip.md, "The caster"):
 *
 *   NTRIP_CASTER_LISTEN  --ntrip-caster-listen  host:port to accept sources and clients on (default :2101)
 *   NTRIP_CASTER_MOUNTS  --ntrip-caster-mounts  a JSON array, inline or the path of a file holding it:
 *     [{"mount": "DST", "source_password": "...", "users": ["user:pass", ...], "str": "STR;DST;..."}]
 *     `users` absent = an open mount; `str` = its sourcetable line (else the source's STR header is used).
 *
 * The caster runs when NTRIP_CASTER_MOUNTS is set. Every problem names the variable or file, the line and
 * field, and what was expected; unknown fields warn. Passwords are never echoed.
 */
import type { LoadContext, Setting } from "./context.ts";
import { formatHostPort, parseHostPort } from "./ip.ts";
import { isWorldAccessible, readConfigFile, worldAccessibleWarning } from "./source.ts";
import type { ProblemCollector } from "./errors.ts";
import { arrayElementLines, syntaxErrorLine } from "./json_lines.ts";

export const NTRIP_CASTER_DEFAULT_PORT = 2101;

export interface NtripCasterUser {
  user: string;
  password: string;
}

export interface NtripCasterMount {
  /** Without a leading slash. */
  mount: string;
  sourcePassword: string;
  /** Who may pull; undefined = anyone (an open mount). */
  users?: NtripCasterUser[];
  /** The sourcetable line; undefined = the source's `STR:` header, else a generated one. */
  str?: string;
}

export interface NtripCasterConfig {
  /** host:port as given (normalized), for status. */
  listen: string;
  hostname: string;
  port: number;
  mounts: NtripCasterMount[];
}

export interface NtripCasterSection {
  ntripCaster?: NtripCasterConfig;
}

const KNOWN_FIELDS = ["mount", "source_password", "users", "str"];
/** NTRIP mountpoints: letters, digits and a few marks (they travel in a request line and an STR field). */
const MOUNT_NAME = /^[A-Za-z0-9_.-]{1,100}$/;
const MOUNTS_EXPECTED = 'a JSON array of {"mount", "source_password", "users": ["user:pass"], "str"}';

export async function loadNtripCasterSection(ctx: LoadContext): Promise<NtripCasterSection> {
  const mountsSetting = ctx.setting("NTRIP_CASTER_MOUNTS", "ntrip-caster-mounts");
  const listenSetting = ctx.setting("NTRIP_CASTER_LISTEN", "ntrip-caster-listen");
  if (!mountsSetting) {
    if (listenSetting) {
      ctx.warn(listenSetting, "ignored: the caster runs only when NTRIP_CASTER_MOUNTS is set");
    }
    return {};
  }
  let hostname = "0.0.0.0", port = NTRIP_CASTER_DEFAULT_PORT;
  if (listenSetting) {
    const r = parseHostPort(listenSetting.value.trim(), { allowEmptyHost: true, allowPortZero: true });
    if (!r.ok) ctx.error(listenSetting, r.expected, listenSetting.value);
    else {
      hostname = r.value.host === "" ? "0.0.0.0" : r.value.host;
      port = r.value.port;
    }
  }
  const text = await mountsText(ctx, mountsSetting);
  if (text === undefined) return {};
  const mounts = parseCasterMounts(text.text, text.source, ctx.problems);
  return { ntripCaster: { listen: formatHostPort({ host: hostname, port }), hostname, port, mounts } };
}

/** The JSON of the setting: inline when it starts like JSON, else read from the file it names. */
async function mountsText(
  ctx: LoadContext,
  s: Setting,
): Promise<{ text: string; source: string } | undefined> {
  const value = s.value.trim();
  if (value.startsWith("[") || value.startsWith("{")) return { text: value, source: s.key ?? s.source };
  const text = await ctx.capture(() => readConfigFile(value, s));
  if (text !== undefined && await isWorldAccessible(value)) ctx.warnings.push(worldAccessibleWarning(value));
  return text === undefined ? undefined : { text, source: value };
}

/**
 * Parses the mounts JSON from `source` (a file path or variable name), reporting every problem to `p`.
 * Returns the mounts that are valid.
 */
export function parseCasterMounts(text: string, source: string, p: ProblemCollector): NtripCasterMount[] {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    // The parser's own message may quote the text (a password): only its line is kept.
    p.error({ source, line: syntaxErrorLine(text, e), expected: `valid JSON: ${MOUNTS_EXPECTED}` });
    return [];
  }
  if (!Array.isArray(data) || data.length === 0) {
    p.error({ source, line: 1, expected: `${MOUNTS_EXPECTED} with at least one mount` });
    return [];
  }
  const lines = arrayElementLines(text);
  const mounts: NtripCasterMount[] = [];
  const seen = new Map<string, number>();
  data.forEach((item, i) => {
    const at = (field?: string) => ({
      source,
      line: (field && lines[i]?.keys.get(field)) || lines[i]?.line,
      key: field ? `[${i}].${field}` : `[${i}]`,
    });
    if (item === null || typeof item !== "object" || Array.isArray(item)) {
      p.error({ ...at(), expected: 'an object {"mount", "source_password", ...}' });
      return;
    }
    const o = item as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      if (!KNOWN_FIELDS.includes(k)) {
        const where = at(k);
        p.warn(
          where.source,
          where.line,
          `${where.key}: unknown field ignored (known: ${KNOWN_FIELDS.join(", ")})`,
        );
      }
    }
    for (const rep of lines[i]?.repeated ?? []) {
      p.warn(source, rep.line, `[${i}].${rep.key}: given twice; the last applies`);
    }
    const before = p.errors.length;

    let mount = typeof o.mount === "string" ? o.mount.trim().replace(/^\//, "") : undefined;
    if (mount === undefined || !MOUNT_NAME.test(mount)) {
      p.error({
        ...at("mount"),
        expected: "a mountpoint name (1-100 letters, digits, '_', '.', '-'; required)",
        ...(o.mount !== undefined && { got: JSON.stringify(o.mount) }),
      });
      mount = undefined;
    } else if (seen.has(mount)) {
      p.error({
        ...at("mount"),
        expected: `a mountpoint not already defined by [${seen.get(mount)}]`,
        got: mount,
      });
    } else seen.set(mount, i);

    const password = o.source_password;
    if (typeof password !== "string" || password === "" || /\s/.test(password)) {
      p.error({
        ...at("source_password"),
        expected: "a non-empty string without blanks (required; v1 sources send it in their SOURCE line)",
        ...(password !== undefined && { gotDescription: describe(password) }),
      });
    }

    let users: NtripCasterUser[] | undefined;
    if (o.users !== undefined) {
      if (!Array.isArray(o.users) || o.users.length === 0) {
        p.error({
          ...at("users"),
          expected: 'a non-empty array of "user:pass" strings (leave the field out for an open mount)',
          gotDescription: describe(o.users),
        });
      } else {
        users = [];
        o.users.forEach((u, k) => {
          const colon = typeof u === "string" ? u.indexOf(":") : -1;
          if (typeof u !== "string" || colon < 1 || /[\r\n]/.test(u)) {
            p.error({
              ...at("users"),
              key: `[${i}].users[${k}]`,
              expected: '"user:pass" (a user name, a colon, the password)',
              gotDescription: describe(u),
            });
          } else users!.push({ user: u.slice(0, colon), password: u.slice(colon + 1) });
        });
      }
    }

    let str: string | undefined;
    if (o.str !== undefined) {
      if (typeof o.str !== "string" || !o.str.startsWith("STR;") || /[\r\n]/.test(o.str)) {
        p.error({
          ...at("str"),
          expected: "a sourcetable line starting with STR; (one line)",
          got: typeof o.str === "string" ? o.str : JSON.stringify(o.str),
        });
      } else {
        str = o.str;
        const strMount = str.split(";")[1];
        if (mount !== undefined && strMount !== mount) {
          const where = at("str");
          p.warn(where.source, where.line, `${where.key}: names mountpoint "${strMount}", not "${mount}"`);
        }
      }
    }

    if (p.errors.length === before && mount !== undefined) {
      mounts.push({
        mount,
        sourcePassword: password as string,
        ...(users && { users }),
        ...(str !== undefined && { str }),
      });
    }
  });
  return mounts;
}

/** What a bad secret-bearing value was, without showing it. */
function describe(v: unknown): string {
  if (typeof v === "string") {
    return v === "" ? "an empty string" : `a ${v.length}-character string (not shown)`;
  }
  return Array.isArray(v) ? "an array" : v === null ? "null" : `a ${typeof v}`;
}
