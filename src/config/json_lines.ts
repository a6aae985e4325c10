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
