/**
 * A throughput sparkline as inline SVG (no script, font or file from anywhere): the last 15 minutes of one
 * item, newest at the right, scaled to its own peak, with the current rate and the peak beside it in words.
 * One path per line; an item with no traffic costs a flat line, so 300 idle tunnels stay small.
 */
import type { SeriesView, ThroughputHistory } from "./throughput.ts";
import { formatDuration, formatRate } from "./format.ts";
import { escapeHtml } from "./html.ts";

const HEIGHT = 20;

/** The cell HTML: `<svg class="spark">` plus the current rate (and the peak when it differs). */
export function sparkline(s: SeriesView | undefined, points: number, intervalMs: number): string {
  const span = formatDuration((points * intervalMs) / 1000);
  const open = `<svg class="spark" viewBox="0 0 ${points} ${HEIGHT}" preserveAspectRatio="none" role="img"`;
  if (!s || s.rates.length === 0) {
    const every = formatDuration(intervalMs / 1000);
    return `<div class="traffic">${open} data-points="0"><title>no sample yet (one every ${every})</title>` +
      `<path class="none" d="M0 ${
        HEIGHT - 0.5
      }H${points}"/></svg><small class="empty">collecting</small></div>`;
  }
  const peak = Math.max(...s.rates);
  const x0 = points - s.rates.length;
  let shape: string;
  if (peak === 0) {
    shape = `<path d="M${x0} ${HEIGHT - 1}H${points}"/>`;
  } else {
    // The area under one step per interval, in whole units (1 px of the drawing): short paths, since a
    // step at the same height as the one before adds nothing; any traffic at all is at least one unit.
    const y = (v: number) => HEIGHT - Math.max(v > 0 ? 1 : 0, Math.round((v / peak) * (HEIGHT - 1)));
    let d = `M${x0} ${HEIGHT}`, level = HEIGHT, x = x0;
    s.rates.forEach((v, i) => {
      const top = y(v);
      if (top === level) return;
      if (x0 + i > x) d += `H${x0 + i}`;
      d += `V${top}`;
      level = top;
      x = x0 + i;
    });
    shape = `<path class="area" d="${d}H${points}V${HEIGHT}Z"/>`;
  }
  const now = s.last[0] + s.last[1];
  const title = `last ${span}: peak ${formatRate(peak)}, now ${formatRate(now)}`;
  const peakText = peak > now ? `<br><small>peak ${escapeHtml(formatRate(peak))}</small>` : "";
  return `<div class="traffic">${open} data-points="${s.rates.length}"><title>${
    escapeHtml(title)
  }</title>${shape}</svg><span>${escapeHtml(formatRate(now))}${peakText}</span></div>`;
}

/** What every view gets: the wall time of the page and the sampler's history (absent in unit tests). */
export interface ViewContext {
  nowMs: number;
  history?: ThroughputHistory;
}

/** The "traffic" cell of an item: its sparkline (or a dash when the page has no sampler). */
export function trafficCell(ctx: ViewContext, key: string): string {
  const h = ctx.history;
  return h ? sparkline(h.series(key), h.points, h.intervalMs) : '<span class="empty">-</span>';
}

/** The heading of a traffic column: the span the sparklines cover. */
export function trafficHeading(ctx: ViewContext): string {
  const h = ctx.history;
  return h ? `traffic, last ${formatDuration((h.points * h.intervalMs) / 1000)}` : "traffic";
}
