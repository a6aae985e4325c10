/**
 * Env files (`--env-file`, `WGEDGE_ENV_FILE`): the dotenv / docker `--env-file` dialect most VPS setups
 * already have.
 *
 *   # comment                     whole-line comments
 *   export WG_MTU=1380            optional `export `, blanks around `=` allowed
 *   WGEDGE_LOG_LEVEL=debug # x    unquoted: trimmed, a ` #` starts a comment
 *   WGEDGE_ADMIN_TOKEN='a#b c'    single quotes: literal, may span lines
 *   WG_CONFIG="[Interface]\n..."  double quotes: \n \r \t \" \\ \$ escapes, may span lines
 *
 * Values are literal: no `${VAR}` interpolation, so a `$` in a password is just a `$`. Multi-line quoted
 * values let a whole wg-quick config live inline in the env file. A repeated key is a warning; the later
 * value wins, as with a shell `source`.
 */
import { ProblemCollector } from "./errors.ts";

export interface EnvFileEntry {
  value: string;
  /** 1-based line where the assignment starts. */
  line: number;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DOUBLE_QUOTE_ESCAPES: Record<string, string> = {
  n: "\n",
  r: "\r",
  t: "\t",
  '"': '"',
  "\\": "\\",
  "$": "$",
};

/**
 * Parses env-file text; `source` (the path) is named in messages. Throws ConfigErrors listing every bad line;
 * pushes warnings onto `warnings`. Values are never echoed in messages (they are often secrets).
 */
export function parseEnvFile(
  text: string,
  source: string,
  warnings: string[] = [],
): Map<string, EnvFileEntry> {
  const p = new ProblemCollector(warnings);
  const out = new Map<string, EnvFileEntry>();
  const s = text.replace(/^\uFEFF/, "").replace(/\r\n?/g, "\n");
  let i = 0;
  let lineNo = 1;

  /** Moves past the rest of the current line; returns what was skipped. */
  const restOfLine = (): string => {
    const nl = s.indexOf("\n", i);
    const end = nl < 0 ? s.length : nl;
    const rest = s.slice(i, end);
    i = end < s.length ? end + 1 : end;
    lineNo++;
    return rest;
  };

  while (i < s.length) {
    const startLine = lineNo;
    // Leading blanks, then blank line or comment.
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
    if (i >= s.length) break;
    if (s[i] === "\n" || s[i] === "#") {
      restOfLine();
      continue;
    }
    const eq = s.indexOf("=", i);
    const nl = s.indexOf("\n", i);
    if (eq < 0 || (nl >= 0 && nl < eq)) {
      p.error({ source, line: startLine, expected: "KEY=VALUE (line not shown: it may contain a secret)" });
      restOfLine();
      continue;
    }
    let name = s.slice(i, eq).trim();
    if (name.startsWith("export ") || name.startsWith("export\t")) name = name.slice(7).trim();
    if (!NAME.test(name)) {
      p.error({
        source,
        line: startLine,
        expected:
          "a variable name of letters, digits and _ before '=' (line not shown: it may contain a secret)",
      });
      restOfLine();
      continue;
    }
    i = eq + 1;
    while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
    let value: string;
    const quote = s[i];
    if (quote === '"' || quote === "'") {
      i++;
      let v = "";
      let closed = false;
      while (i < s.length) {
        const c = s[i];
        if (c === quote) {
          closed = true;
          i++;
          break;
        }
        if (c === "\n") lineNo++;
        if (quote === '"' && c === "\\" && i + 1 < s.length && s[i + 1] in DOUBLE_QUOTE_ESCAPES) {
          v += DOUBLE_QUOTE_ESCAPES[s[i + 1]];
          i += 2;
          continue;
        }
        v += c;
        i++;
      }
      if (!closed) {
        p.error({
          source,
          line: startLine,
          key: name,
          expected: `a closing ${quote} for the value started here`,
        });
        break;
      }
      const trailing = restOfLine().trim();
      if (trailing !== "" && !trailing.startsWith("#")) {
        p.error({
          source,
          line: lineNo - 1,
          key: name,
          expected: "nothing but a # comment after the closing quote",
        });
        continue;
      }
      value = v;
    } else {
      const raw = restOfLine();
      const comment = raw.search(/\s#/);
      value = (comment < 0 ? raw : raw.slice(0, comment)).trim();
    }
    const prev = out.get(name);
    if (prev) {
      p.warn(source, startLine, `${name} set again (first at line ${prev.line}); the later value is used`);
    }
    out.set(name, { value, line: startLine });
  }
  p.throwIfAny();
  return out;
}
