/**
 * A throughput sparkline as inline SVG (no script, font or file from anywhere): the last 15 minutes of one
 * item, newest at the right, scaled to its own peak, with the current rate and the peak beside it in words.
 * One path per line; an item with no traffic costs a flat line, so 300 idle tunnels stay small.
 */
import type { SeriesView, ThroughputHistory } from "./throughput.ts";
import { formatDuration, formatRate } from "./format.ts";
import { escapeHtml } from "./html.ts";

const HEIGHT = 20;

/** The cell HTML: `<svg class="spark">` plus `now 1.2 MiB/s` (and the peak when it differs). */
export function sparkline(s: SeriesView | undefined, points: number, intervalMs: number): string {
  const span = formatDuration((points * intervalMs) / 1000);
  const open = `<svg class="spark" viewBox="0 0 ${points} ${HEIGHT}" preserveAspectRatio="none" role="img"`;
  if (!s || s.rates.length === 0) {
    return `<div class="traffic">${open} data-points="0"><title>no sample yet (one every ${
      formatDuration(intervalMs / 1000)
    })</title><path class="none" d="M0 ${
      HEIGHT - 0.5
    }H${points}"/></svg> <small class="empty">collecting</small>`;
  }
  const peak = Math.max(...s.rates);
  const x0 = points - s.rates.length;
  const y = (v: number) =>
    peak > 0 ? Math.round((HEIGHT - 1 - (v / peak) * (HEIGHT - 2)) * 10) / 10 : HEIGHT - 1;
  let line: string;
  if (peak === 0) {
    line = `M${x0} ${HEIGHT - 1}H${points}`;
  } else {
    // Each interval is one unit wide: a step from x to x+1 at its rate.
    line = `M${x0} ${y(s.rates[0])}` +
      s.rates.map((_v, i) => `H${x0 + i + 1}${i + 1 < s.rates.length ? `V${y(s.rates[i + 1])}` : ""}`).join(
        "",
      );
  }
  const now = s.last[0] + s.last[1];
  const title = `last ${span}: peak ${formatRate(peak)}, now ${formatRate(now)}`;
  const area = peak > 0 ? `<path class="area" d="${line}V${HEIGHT}H${x0}Z"/>` : "";
  const peakText = peak > now ? `<br><small>peak ${escapeHtml(formatRate(peak))}</small>` : "";
  return `<div class="traffic">${open} data-points="${s.rates.length}"><title>${
    escapeHtml(title)
  }</title>${area}<path d="${line}"/></svg><span>${escapeHtml(formatRate(now))}${peakText}</span></div>`;
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
