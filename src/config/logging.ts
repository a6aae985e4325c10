/**
 * The log section.
 *
 *   WGEDGE_LOG_LEVEL   --log-level   debug | info | warn | error (default info)
 *   WGEDGE_LOG_FORMAT  --log-format  text | json (default text)
 */
import type { LogLevel } from "../util/log.ts";
import type { LoadContext } from "./context.ts";

export const LOG_LEVELS: readonly LogLevel[] = ["debug", "info", "warn", "error"];
export const LOG_FORMATS = ["text", "json"] as const;
export type LogFormat = typeof LOG_FORMATS[number];

export interface LogConfig {
  level: LogLevel;
  format: LogFormat;
}

export interface LogSection {
  log: LogConfig;
}

export function loadLogSection(ctx: LoadContext): LogSection {
  const log: LogConfig = { level: "info", format: "text" };
  const level = ctx.setting("WGEDGE_LOG_LEVEL", "log-level");
  if (level) log.level = ctx.oneOf(level, LOG_LEVELS) ?? log.level;
  const format = ctx.setting("WGEDGE_LOG_FORMAT", "log-format");
  if (format) log.format = ctx.oneOf(format, LOG_FORMATS) ?? log.format;
  return { log };
}
