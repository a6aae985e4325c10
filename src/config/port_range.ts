/**
 * Port ranges as relays and rpc routes write them: `50000` or `50000-50099` (inclusive). A range maps onto a
 * range of equal length port by port, so both sides are parsed here with one rule and one cap: a range opens
 * one listener per port, and MAX_PORT_RANGE keeps a typo (`1-65535`) from opening tens of thousands of sockets.
 */

/** Most ports one range may span (each is a listener; a relay pair of ranges holds 2 sockets per port). */
export const MAX_PORT_RANGE = 1000;

/** First port and how many: `50000-50099` is {first: 50000, count: 100}; a single port has count 1. */
export interface PortSpan {
  first: number;
  count: number;
}

const PORT = /^\d{1,5}$/;

/** Parses `P` or `A-B`; returns the span or a problem ("expected ..."). */
export function parsePortSpan(text: string): PortSpan | { problem: string } {
  const t = text.trim();
  const parts = t.split("-");
  if (parts.length > 2 || !parts.every((p) => PORT.test(p.trim()))) {
    return { problem: "a port number 1..65535 or a range FIRST-LAST" };
  }
  const [a, b] = parts.map((p) => Number(p.trim()));
  const last = b ?? a;
  if (a < 1 || a > 65535 || last < 1 || last > 65535) {
    return { problem: b === undefined ? "a port number 1..65535" : "ports within 1..65535" };
  }
  if (last < a) return { problem: `a range FIRST-LAST with FIRST <= LAST (${a} > ${last})` };
  const count = last - a + 1;
  if (count > MAX_PORT_RANGE) {
    return { problem: `a range of at most ${MAX_PORT_RANGE} ports (${a}-${last} has ${count})` };
  }
  return { first: a, count };
}

/** `50000` or `50000-50099`. */
export function formatPortSpan(s: PortSpan): string {
  return s.count === 1 ? String(s.first) : `${s.first}-${s.first + s.count - 1}`;
}
