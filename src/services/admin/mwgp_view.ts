/**
 * The dashboard's mwgp sections (one per instance, "mwgp_server"/"mwgp_client"): what it listens on and
 * forwards to, its traffic, its counters in words, drops by reason (only the reasons that happened), and the
 * first forwarding entries (the status JSON has up to 1000; the page shows 20).
 */
import { formatDuration, words } from "./format.ts";
import {
  bytesCell,
  cell,
  escapeHtml,
  isObject,
  type Json,
  num,
  objects,
  type Problem,
  table,
} from "./html.ts";
import { trafficCell, trafficHeading, type ViewContext } from "./sparkline.ts";
import { seriesKey } from "./throughput.ts";

const SHOWN_ENTRIES = 20;

export function mwgpProblems(name: string, v: unknown): Problem[] {
  if (!isObject(v) || !isObject(v.stats) || !num(v.stats.sendErrors)) return [];
  return [{ section: name, html: `${escapeHtml(name)}: ${v.stats.sendErrors} send errors` }];
}

export function renderMwgp(name: string, v: unknown, ctx: ViewContext): string {
  if (!isObject(v)) return `<p>${cell(v)}</p>`;
  const stats: Json = isObject(v.stats) ? v.stats : {};
  const head = [
    `mode <b>${cell(v.mode)}</b>`,
    `listens on <b>${cell(v.listen)}</b>`,
    v.server !== undefined ? `forwards to <b>${cell(v.server)}</b>` : "",
    v.serverAddress !== undefined ? `(${cell(v.serverAddress)})` : "",
    `obfuscation <b>${v.obfs ? "on" : "off"}</b>`,
    num(v.entries) !== undefined ? `${cell(v.entries)} entries, ${cell(v.completed)} completed` : "",
  ].filter(Boolean).join(" &middot; ");
  const counters = Object.entries(stats).filter(([k, x]) => k !== "drops" && num(x) !== undefined).map((
    [k, x],
  ) => `<span>${escapeHtml(words(k))} <b>${/bytes/i.test(k) ? bytesCell(x) : cell(x)}</b></span>`).join(
    " &middot; ",
  );
  const drops = isObject(stats.drops)
    ? Object.entries(stats.drops).filter(([, x]) => num(x)).map(([k, x]) =>
      `${escapeHtml(words(k))} ${cell(x)}`
    )
    : [];
  const entries = objects(v.table);
  const rows = entries.slice(0, SHOWN_ENTRIES).map((e) => ({
    cells: [
      `<span class="addr">${cell(e.client)}</span>`,
      `<span class="addr">${cell(e.server)}</span>${
        e.serverLabel ? ` <small>${cell(e.serverLabel)}</small>` : ""
      }`,
      e.completed ? "yes" : '<span class="warn">pending</span>',
      e.obfuscated ? "yes" : "no",
      num(e.idleSec) !== undefined ? escapeHtml(formatDuration(e.idleSec as number)) : "",
    ],
  }));
  const more = entries.length > SHOWN_ENTRIES
    ? `<p class="facts">${entries.length - SHOWN_ENTRIES} more in the status JSON</p>`
    : "";
  return `<p class="facts">${head}</p>
<p class="facts">${counters}</p>
<div class="facts">drops: ${drops.length ? drops.join(" &middot; ") : "none"} &middot; ${
    escapeHtml(trafficHeading(ctx))
  }: ${trafficCell(ctx, seriesKey.mwgp(name))}</div>${
    rows.length
      ? table(`${name}-table`, ["client", "server", "handshake", "obfuscated", "idle for"], rows) + more
      : ""
  }`;
}
