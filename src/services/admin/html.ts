/** HTML text helpers for the dashboard: every value that reaches a page passes through escapeHtml. */
import { formatAgeOf, formatBytes, words } from "./format.ts";

export function escapeHtml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;").replace(
    /'/g,
    "&#39;",
  );
}

/** A status value as escaped cell text: objects as JSON, null/undefined as nothing. */
export function cell(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return escapeHtml(JSON.stringify(v));
  return escapeHtml(String(v));
}

export type Json = Record<string, unknown>;

export function isObject(v: unknown): v is Json {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** The objects of a status array (anything else is dropped: views read named fields only). */
export function objects(v: unknown): Json[] {
  return Array.isArray(v) ? v.filter(isObject) : [];
}

export function num(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) ? v : undefined;
}

/** A table: headings (plain text, escaped here) and rows of cell HTML; `cls` per row marks problems. */
export function table(
  id: string,
  headings: string[],
  rows: { cells: string[]; cls?: string; after?: string }[],
): string {
  const head = headings.map((h) => `<th>${escapeHtml(h)}</th>`).join("");
  const body = rows.map((r) =>
    `<tr${r.cls ? ` class="${r.cls}"` : ""}>${r.cells.map((c) => `<td>${c}</td>`).join("")}</tr>${
      r.after
        ? `\n<tr class="${r.cls ?? ""} detail"><td colspan="${headings.length}">${r.after}</td></tr>`
        : ""
    }`
  ).join("\n");
  return `<table id="${id}"><thead><tr>${head}</tr></thead><tbody>\n${body}\n</tbody></table>`;
}

/** A line of `label value` facts separated by dots (values are HTML already). */
export function facts(items: [string, string][]): string {
  const shown = items.filter(([, v]) => v !== "");
  return shown.length
    ? `<p class="facts">${
      shown.map(([k, v]) => `<span>${escapeHtml(k)} <b>${v}</b></span>`).join(" &middot; ")
    }</p>`
    : "";
}

/** Bytes in binary units, the exact count in the title. */
export function bytesCell(v: unknown): string {
  const n = num(v);
  return n === undefined
    ? cell(v)
    : `<span class="n" title="${n} bytes">${escapeHtml(formatBytes(n))}</span>`;
}

/** An ISO time as an age (`5 min ago`), the time itself in the title. */
export function ageCell(iso: unknown, nowMs: number): string {
  const text = escapeHtml(formatAgeOf(iso, nowMs));
  return typeof iso === "string" ? `<span title="${escapeHtml(iso)}">${text}</span>` : text;
}

/** A problem's text: wraps anywhere, so a long error never widens the page. */
export function errorText(v: unknown): string {
  return `<span class="err">${cell(v)}</span>`;
}

/**
 * Whether an item's lastError is still its state: true unless a success came after it (`lastSuccessAt` later
 * than `lastErrorAt`, ISO). An error without a time (older status) counts as current.
 */
export function errorIsCurrent(v: Json): boolean {
  if (!v.lastError) return false;
  const err = typeof v.lastErrorAt === "string" ? Date.parse(v.lastErrorAt) : NaN;
  const ok = typeof v.lastSuccessAt === "string" ? Date.parse(v.lastSuccessAt) : NaN;
  return Number.isNaN(err) || Number.isNaN(ok) || ok <= err;
}

/** The line under a row: `last error 3 min ago: ...` (the time in the title), or nothing without an error. */
export function lastErrorLine(v: Json, nowMs: number): string | undefined {
  if (!v.lastError) return undefined;
  const when = typeof v.lastErrorAt === "string" ? ` ${ageCell(v.lastErrorAt, nowMs)}` : "";
  return `last error${when}: ${errorText(v.lastError)}`;
}

/** One line of the page's "problems" box: what is wrong, with a link to its section. */
export interface Problem {
  section: string;
  html: string;
}

/**
 * Any value in words, for fields no view knows: bytes in units (by field name), lists one per line, objects
 * as `key: value` lines, booleans as yes/no; never JSON.
 */
export function valueHtml(key: string, v: unknown): string {
  if (typeof v === "number" && /bytes/i.test(key)) return bytesCell(v);
  if (Array.isArray(v)) return v.map((x) => valueHtml(key, x)).join("<br>");
  if (isObject(v)) {
    return Object.entries(v).map(([k, x]) => `<small>${escapeHtml(words(k))}:</small> ${valueHtml(k, x)}`)
      .join("<br>");
  }
  if (typeof v === "boolean") return v ? "yes" : "no";
  return `<span class="wrap">${cell(v)}</span>`;
}
