/**
 * Where things are in a JSON text: JSON.parse gives values but no lines, and an operator fixing a 300-station
 * file needs "stations.json:212: station TCSL: src_port ...". This scans the text once (strings, escapes and
 * nesting only; JSON.parse still decides validity) and records, for a top-level array of objects, the line
 * of each element and of each of its keys, and keys an element repeats (JSON.parse silently keeps the last).
 */

export interface JsonElementLines {
  /** 1-based line of the element's first character. */
  line: number;
  /** 1-based line of each key of the element (a top-level array element that is an object). */
  keys: Map<string, number>;
  /** Keys given twice in the element, with the line of the second. */
  repeated: { key: string; line: number }[];
}

/**
 * Lines of the elements of a top-level JSON array (and of the keys of those that are objects). Returns an
 * empty list when the text is not an array; never throws (a broken text is JSON.parse's to report).
 */
export function arrayElementLines(text: string): JsonElementLines[] {
  const out: JsonElementLines[] = [];
  // Containers open around the current position: "[" or "{" with whether a new element (array) or a key
  // (object) comes next.
  const stack: { kind: "[" | "{"; expectNext: boolean }[] = [];
  let line = 1;
  let current: JsonElementLines | undefined;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\n") {
      line++;
      continue;
    }
    if (c === " " || c === "\t" || c === "\r") continue;
    const top = stack[stack.length - 1];
    // A value starts directly in the top-level array: a new element.
    if (stack.length === 1 && top.kind === "[" && top.expectNext && c !== "]") {
      top.expectNext = false;
      current = { line, keys: new Map(), repeated: [] };
      out.push(current);
    }
    if (c === '"') {
      const start = i;
      const startLine = line;
      i++;
      while (i < text.length && text[i] !== '"') {
        if (text[i] === "\\") i++;
        else if (text[i] === "\n") line++; // invalid JSON, but keep counting
        i++;
      }
      if (top?.kind === "{" && top.expectNext) {
        top.expectNext = false;
        if (stack.length === 2 && current) {
          const key = decodeKey(text.slice(start, i + 1));
          if (current.keys.has(key)) current.repeated.push({ key, line: startLine });
          else current.keys.set(key, startLine);
        }
      }
      continue;
    }
    if (c === "[" || c === "{") {
      stack.push({ kind: c, expectNext: true });
    } else if (c === "]" || c === "}") {
      stack.pop();
      if (stack.length === 0) return out;
    } else if (c === "," && top) {
      top.expectNext = true;
    } else if (stack.length === 0) {
      return out; // not an array
    }
  }
  return out;
}

function decodeKey(quoted: string): string {
  try {
    return JSON.parse(quoted) as string;
  } catch {
    return quoted.slice(1, -1);
  }
}

/**
 * The 1-based line of a JSON.parse SyntaxError in `text`, read from its message ("... at position 123" or
 * "(line 4 column 2)"); undefined when the message names neither.
 */
export function syntaxErrorLine(text: string, error: unknown): number | undefined {
  const message = error instanceof Error ? error.message : String(error);
  const byLine = /line (\d+) column \d+/.exec(message);
  if (byLine) return Number(byLine[1]);
  const byPosition = /position (\d+)/.exec(message);
  if (!byPosition) return undefined;
  const pos = Math.min(Number(byPosition[1]), text.length);
  let line = 1;
  for (let i = 0; i < pos; i++) if (text.charCodeAt(i) === 10) line++;
  return line;
}

/**
 * The 1-based line of every value in a JSON5 text, keyed by its path as config messages spell it
 * (`servers[0].peers[1].forward_to`; the root is ""). A path names the line of its key for an object member
 * and of its first character for an array element. Scans strings (both quotes, escapes, line continuations),
 * comments and identifier keys only; JSON5.parse still decides validity, and a broken text gives what was
 * found before the break. Messages use it instead of searching for the key's name, which finds the first
 * `forward_to` of the file for every peer.
 */
export function json5PathLines(text: string): Map<string, number> {
  const out = new Map<string, number>();
  type Frame = { kind: "[" | "{"; path: string; index: number; expectKey: boolean; key?: string };
  const stack: Frame[] = [];
  let line = 1;
  // Where the next value goes: set when a key (or an array slot) is pending.
  let pending: string | undefined = "";
  const at = (path: string, l: number) => {
    if (!out.has(path)) out.set(path, l);
  };
  const join = (base: string, key: string) => (base === "" ? key : `${base}.${key}`);
  const valueStart = () => {
    const top = stack[stack.length - 1];
    if (top?.kind === "[" && pending === undefined) {
      pending = `${top.path}[${top.index}]`;
      at(pending, line);
    }
    const p = pending;
    pending = undefined;
    return p;
  };
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "\n" || c === "\u2028" || c === "\u2029") {
      line++;
      continue;
    }
    if (c === "\r") {
      if (text[i + 1] !== "\n") line++;
      continue;
    }
    if (c === " " || c === "\t" || c === "\uFEFF" || c === "\v" || c === "\f" || c === "\u00A0") continue;
    if (c === "/" && text[i + 1] === "/") {
      while (i + 1 < text.length && !/[\n\r\u2028\u2029]/.test(text[i + 1])) i++;
      continue;
    }
    if (c === "/" && text[i + 1] === "*") {
      i += 2;
      while (i < text.length && !(text[i] === "*" && text[i + 1] === "/")) {
        if (text[i] === "\n") line++;
        i++;
      }
      i++;
      continue;
    }
    const top = stack[stack.length - 1];
    if (top?.kind === "{" && top.expectKey && c !== "}") {
      // A member name: quoted or an identifier.
      const keyLine = line;
      let key = "";
      if (c === '"' || c === "'") {
        const start = i;
        i = skipString(text, i, () => line++);
        key = decodeKey(c === '"' ? text.slice(start, i + 1) : JSON.stringify(text.slice(start + 1, i)));
      } else {
        const m = /^[$_\p{L}\p{Nl}\\][$_\p{L}\p{Nl}\p{Mn}\p{Mc}\p{Nd}\p{Pc}\u200C\u200D\\]*/u.exec(
          text.slice(i),
        );
        if (!m) return out;
        key = m[0];
        i += m[0].length - 1;
      }
      top.expectKey = false;
      pending = join(top.path, key);
      at(pending, keyLine);
      continue;
    }
    if (c === ":") continue;
    if (c === ",") {
      if (top?.kind === "{") top.expectKey = true;
      else if (top?.kind === "[") top.index++;
      pending = undefined;
      continue;
    }
    if (c === "}" || c === "]") {
      stack.pop();
      pending = undefined;
      if (stack.length === 0) return out;
      continue;
    }
    if (c === "{" || c === "[") {
      const path = valueStart() ?? "";
      stack.push({ kind: c, path, index: 0, expectKey: c === "{" });
      continue;
    }
    valueStart();
    if (c === '"' || c === "'") i = skipString(text, i, () => line++);
    else while (i + 1 < text.length && !/[\s,\]}\/]/.test(text[i + 1])) i++;
  }
  return out;
}

/** Index of the closing quote of the string opening at `i`; calls newline() for each escaped line break. */
function skipString(text: string, i: number, newline: () => void): number {
  const q = text[i];
  for (i++; i < text.length && text[i] !== q; i++) {
    if (text[i] === "\\") {
      i++;
      if (text[i] === "\n" || text[i] === "\u2028" || text[i] === "\u2029") newline();
      else if (text[i] === "\r") {
        if (text[i + 1] === "\n") i++;
        newline();
      }
    } else if (text[i] === "\n") return i; // invalid; JSON5.parse reports it
  }
  return i;
}
