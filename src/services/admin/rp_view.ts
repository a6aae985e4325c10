/**
 * The dashboard's reverse-proxy sections. "port_mappings" (rps, with the "rp_server" settings and clients
 * above the table): one row per public port a tunnel client holds. "rp_routes" (rpc, with the "rp_client"
 * state): one row per route this process asked for, routes that are not registered first with their error
 * under the row. Ages in words, bytes in binary units, a sparkline per mapping and route.
 */
import { formatAgo, formatDuration } from "./format.ts";
import {
  ageCell,
  bytesCell,
  cell,
  errorText,
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
import { joinHostPort } from "../../util/host_port.ts";

function ms(v: unknown, f: (s: number) => string): string {
  const n = num(v);
  return n === undefined ? "" : escapeHtml(f(n / 1000));
}

function serverFacts(server: unknown, ctx: ViewContext): string {
  if (!isObject(server)) return "";
  const clients = objects(server.clients);
  const api = Array.isArray(server.api) ? server.api.map((a) => cell(a)).join(", ") : cell(server.api);
  const facts = [
    `API on <b>${api}</b>`,
    `ports allowed <b>${cell(server.allow_ports)}</b>`,
    `a client expires after <b>${ms(server.client_expiry_ms, formatDuration)}</b> without a heartbeat`,
  ];
  // startup_time is Unix seconds (the wg-rp API's field; rpc compares it to notice a restart).
  const started = num(server.startup_time);
  if (started !== undefined) facts.push(`started ${escapeHtml(formatAgo(ctx.nowMs / 1000 - started))}`);
  const who = clients.length
    ? `<p class="facts">${clients.length} client${clients.length === 1 ? "" : "s"}: ${
      clients.map((c) =>
        `<span><b>${cell(c.client_ip)}</b> seen ${ms(c.last_seen_ms_ago, formatAgo)}, ${
          cell(c.mappings)
        } mapping${c.mappings === 1 ? "" : "s"}</span>`
      ).join(" &middot; ")
    }</p>`
    : '<p class="facts empty">no client</p>';
  return `<p class="facts">${facts.join(" &middot; ")}</p>${who}`;
}

/** The "port_mappings" section, with the rps settings and clients from "rp_server" when present. */
export function renderMappings(mappings: unknown, server: unknown, ctx: ViewContext): string {
  const list = objects(mappings);
  const rows = list.map((m) => ({
    cls: num(m.dial_failures) ? "warn" : undefined,
    cells: [
      `<b>${cell(m.remote_port)}</b><br><small>${cell(String(m.protocol ?? "").toUpperCase())}</small>`,
      `<span class="addr">${
        cell(joinHostPort(String(m.client_ip ?? ""), String(m.client_port ?? "")))
      }</span>`,
      `<span class="addr">${cell(m.local_addr)}</span>`,
      ageCell(m.created_at, ctx.nowMs),
      `${cell(m.connections_active)} open<br><small>${cell(m.connections_total)} in all</small>`,
      num(m.dial_failures) ? `<span class="warn">${m.dial_failures}</span>` : cell(m.dial_failures),
      bytesCell(m.bytes_in),
      bytesCell(m.bytes_out),
      trafficCell(ctx, seriesKey.mapping(m.protocol, m.remote_port)),
    ],
  }));
  const body = list.length === 0 ? '<p class="empty">no mapping</p>' : table("mappings-table", [
    "public port",
    "client (in the tunnel)",
    "client's service",
    "created",
    "connections",
    "failed dials",
    "in",
    "out",
    trafficHeading(ctx),
  ], rows);
  return serverFacts(server, ctx) + body;
}

export function routeProblems(routes: unknown, client: unknown): Problem[] {
  const out: Problem[] = [];
  if (isObject(client) && client.server_reachable === false) {
    out.push({
      section: "rp_routes",
      html: `rps server <b>${cell(client.server_api)}</b> does not answer (${
        cell(client.consecutive_failures)
      } failures in a row)`,
    });
  }
  for (const r of objects(routes)) {
    if (r.state !== "registered" || r.error) {
      out.push({
        section: "rp_routes",
        html: `route <b>${cell(r.route)}</b>: ${cell(r.state)}${
          r.error ? ` &mdash; ${errorText(r.error)}` : ""
        }`,
      });
    }
  }
  return out;
}

function clientFacts(client: unknown): string {
  if (!isObject(client)) return "";
  const reachable = client.server_reachable === true
    ? '<span class="ok">answering</span>'
    : client.server_reachable === false
    ? '<span class="bad">not answering</span>'
    : cell(client.server_reachable);
  const items = [
    `server <b>${cell(client.server_api)}</b> ${reachable}`,
    Array.isArray(client.server_protocols)
      ? `speaks ${client.server_protocols.map((p) => cell(p)).join(", ")}`
      : "",
    num(client.mappings_lost) ? `<span class="warn">${client.mappings_lost} mappings lost</span>` : "",
    num(client.consecutive_failures) ? `${client.consecutive_failures} failures in a row` : "",
    num(client.next_attempt_in_ms) !== undefined && client.server_reachable === false
      ? `next try in ${ms(client.next_attempt_in_ms, formatDuration)}`
      : "",
  ].filter(Boolean);
  return `<p class="facts">${items.join(" &middot; ")}</p>`;
}

/** The "rp_routes" section, with the rpc client state from "rp_client" when present. */
export function renderRoutes(routes: unknown, client: unknown, ctx: ViewContext): string {
  const list = objects(routes);
  const rank = (r: Json) => r.state === "registered" && !r.error ? 1 : 0;
  const rows = [...list].sort((a, b) => rank(a) - rank(b)).map((r) => ({
    cls: rank(r) ? undefined : "bad",
    cells: [
      `<b>${cell(r.route)}</b>`,
      `${cell(r.remote_port)} <small>${cell(String(r.protocol ?? "").toUpperCase())}</small>`,
      r.state === "registered"
        ? `<span class="ok">registered</span>${
          num(r.confirmed_ms_ago) !== undefined
            ? `<br><small>confirmed ${ms(r.confirmed_ms_ago, formatAgo)}</small>`
            : ""
        }`
        : `<span class="bad">${cell(r.state)}</span>`,
      `${cell(r.connections_active)} open<br><small>${cell(r.connections_total)} in all</small>`,
      bytesCell(r.bytes_in),
      bytesCell(r.bytes_out),
      trafficCell(ctx, seriesKey.route(r.route)),
    ],
    after: r.error ? `last error: ${errorText(r.error)}` : undefined,
  }));
  const body = list.length === 0 ? '<p class="empty">no route</p>' : table("routes-table", [
    "route",
    "public port",
    "state",
    "connections",
    "in",
    "out",
    trafficHeading(ctx),
  ], rows);
  return clientFacts(client) + body;
}
