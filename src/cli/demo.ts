/**
 * `wgedge demo`: a self-contained tour on loopback, nothing needs root or configuration.
 * Step 1: two userspace WireGuard devices with fresh keys complete a handshake over real UDP sockets on
 * 127.0.0.1 and ping both ways (IPv4 and IPv6 inside the tunnel).
 * Step 2: the reverse-proxy story: an rps and an rpc joined by a tunnel publish a built-in hello service on a
 * public port; the demo fetches it once itself, prints the URL to curl and the dashboard, and runs until
 * Ctrl-C (`--once` exits after the self-check, for scripts and tests).
 */
import { type Command, defineCommand } from "./command.ts";

export const demoCommand: Command = defineCommand({
  name: "demo",
  summary: "Loopback demo, no root needed: WireGuard handshake and pings, then a reverse proxy.",
  usage: "demo [-n PINGS] [--public-port N] [--admin-listen HOST:PORT] [--once]",
  flags: {
    count: {
      type: "string",
      short: "n",
      arg: "PINGS",
      default: "2",
      help: "pings each way and address family in step 1, 1..1000",
    },
    "public-port": {
      type: "string",
      arg: "N",
      default: "8080, or a free port when 8080 is taken",
      help: "public port of the demo reverse proxy (127.0.0.1 only)",
    },
    "admin-listen": {
      type: "string",
      arg: "HOST:PORT",
      default: "127.0.0.1:8081, or a free port when taken",
      help: "where the demo's admin API and dashboard listen",
    },
    once: {
      type: "boolean",
      help: "exit after the self-check instead of running until Ctrl-C (scripts, tests)",
    },
  },
  notes: ["Needs no root, no configuration and no kernel module; nothing leaves 127.0.0.1."],
  async run(parsed) {
    // The tour (tunnels, services) is loaded when the command runs, not with the command table.
    const { runDemo } = await import("./demo_tour.ts");
    return await runDemo(parsed.values);
  },
});
