/**
 * Human units for the dashboard: bytes in binary units, rates, durations and ages, and field names in words.
 * Pure functions of their arguments (the caller passes "now"), so tests pin every output.
 */

const BYTE_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

/** `0 B`, `512 B`, `1.50 KiB`, `12.3 MiB`, `118 GiB`: three significant digits, like `wg show`'s transfer. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return String(n);
  let unit = 0;
  let v = n;
  while (v >= 1024 && unit < BYTE_UNITS.length - 1) {
    v /= 1024;
    unit++;
  }
  if (unit === 0) return `${Math.round(n)} B`;
  const digits = v >= 100 ? 0 : v >= 10 ? 1 : 2;
  return `${v.toFixed(digits)} ${BYTE_UNITS[unit]}`;
}

/** A throughput in bytes per second: `0 B/s`, `1.50 KiB/s`, `12.3 MiB/s`. */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/**
 * A duration in at most two units, largest first: `42 s`, `5 min 3 s`, `30 min`, `3 h 12 min`, `2 d 4 h`.
 * Seconds are dropped from 10 min on (nobody reads them there); negative or non-finite input shows as is.
 */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return String(seconds);
  const s = Math.floor(seconds);
  if (s < 60) return `${s} s`;
  const two = (big: number, bigUnit: string, small: number, smallUnit: string) =>
    small ? `${big} ${bigUnit} ${small} ${smallUnit}` : `${big} ${bigUnit}`;
  if (s < 600) return two(Math.floor(s / 60), "min", s % 60, "s");
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86_400) return two(Math.floor(s / 3600), "h", Math.floor((s % 3600) / 60), "min");
  return two(Math.floor(s / 86_400), "d", Math.floor((s % 86_400) / 3600), "h");
}

/** How long ago, from seconds: `5 s ago`, `3 h 12 min ago` (a clock step back shows `0 s ago`). */
export function formatAgo(seconds: number): string {
  return `${formatDuration(Math.max(0, seconds))} ago`;
}

/** `never`, or the age of an ISO time relative to `nowMs` (`42 s ago`); an unparsable value is shown as is. */
export function formatAgeOf(iso: unknown, nowMs: number): string {
  if (iso === null || iso === undefined || iso === "") return "never";
  const at = typeof iso === "string" ? Date.parse(iso) : NaN;
  if (Number.isNaN(at)) return String(iso);
  return formatAgo((nowMs - at) / 1000);
}

/** A field name in words: `bytesToTarget` and `bytes_to_target` both read `bytes to target`. */
export function words(field: string): string {
  return field.replace(/_/g, " ").replace(/([a-z0-9])([A-Z])/g, "$1 $2").replace(/\s+/g, " ").trim()
    .toLowerCase();
}

/** Plural-aware count: `1 relay`, `4 relays`. */
export function count(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}
