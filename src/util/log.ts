/**
 * One line per event. `WGEDGE_LOG_LEVEL` (debug|info|warn|error, default info) and `WGEDGE_LOG_FORMAT=json`.
 * Callers pass structured fields; a field whose name looks secret (src/util/secret.ts, at any depth of a
 * nested value) is replaced by "[redacted]" and URL credentials in strings are cut, so a slip in a call site
 * cannot leak a key into the log.
 */
import { redactDeep } from "./secret.ts";

export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export interface LogSink {
  write(line: string, level: LogLevel): void;
}

const stderrSink: LogSink = {
  write(line) {
    try {
      Deno.stderr.writeSync(new TextEncoder().encode(line + "\n"));
    } catch {
      // stderr closed: nothing sensible to do
    }
  },
};

interface LoggerState {
  level: LogLevel;
  json: boolean;
  sink: LogSink;
}

function envOr(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

const state: LoggerState = {
  level: (envOr("WGEDGE_LOG_LEVEL") as LogLevel) in ORDER ? envOr("WGEDGE_LOG_LEVEL") as LogLevel : "info",
  json: envOr("WGEDGE_LOG_FORMAT") === "json",
  sink: stderrSink,
};

export function configureLogging(opts: Partial<LoggerState>): void {
  Object.assign(state, opts);
}

/** The one secret rule (secret.ts): a secret-named field at any depth, URL credentials in any string. */
function redactValue(key: string, value: unknown): unknown {
  return (redactDeep({ [key]: value }) as Record<string, unknown>)[key];
}

function formatText(v: unknown): string {
  const s = typeof v === "string" ? v : JSON.stringify(v);
  return s !== undefined && /[\s"=]/.test(s) ? JSON.stringify(s) : String(s);
}

export class Logger {
  constructor(readonly component: string) {}

  child(component: string): Logger {
    return new Logger(`${this.component}.${component}`);
  }

  log(level: LogLevel, msg: string, fields: LogFields = {}): void {
    if (ORDER[level] < ORDER[state.level]) return;
    const ts = new Date().toISOString();
    if (state.json) {
      const obj: LogFields = { ts, level, component: this.component, msg };
      for (const [k, v] of Object.entries(fields)) obj[k] = redactValue(k, v);
      state.sink.write(JSON.stringify(obj), level);
      return;
    }
    let line = `${ts} ${level.toUpperCase().padEnd(5)} [${this.component}] ${msg}`;
    for (const [k, v] of Object.entries(fields)) line += ` ${k}=${formatText(redactValue(k, v))}`;
    state.sink.write(line, level);
  }

  debug(msg: string, fields?: LogFields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: LogFields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: LogFields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: LogFields): void {
    this.log("error", msg, fields);
  }
}

export function logger(component: string): Logger {
  return new Logger(component);
}
