/**
 * `wgedge ping -c wg.conf ADDRESS`: brings the tunnel up, sends ICMP echo through it and prints one line per
 * reply, like ping(8). ADDRESS may be a name (resolved like a tunnel dial). Exit 0 if any reply arrived, 1
 * otherwise.
 */
import { type Command, defineCommand, intFlag, UsageError } from "./command.ts";
import { loadTunnelFromFlags, TUNNEL_FLAGS, TUNNEL_NOTE, TUNNEL_USAGE } from "./tunnel_flags.ts";
import { tunnelNameOf } from "./up.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const pingCommand: Command = defineCommand({
  name: "ping",
  summary: "Send ICMP echo through a tunnel; exit 0 if any reply arrived.",
  usage: `ping ${TUNNEL_USAGE} [-n COUNT] [-W SECONDS] [-i SECONDS] [-s SIZE] ADDRESS`,
  positionals: true,
  args: [{
    name: "ADDRESS",
    help: "IPv4/IPv6 address or name inside the tunnel (within a peer's AllowedIPs; names are asked of the " +
      "tunnel's DNS = servers, else the host's resolver)",
  }],
  flags: {
    ...TUNNEL_FLAGS,
    count: { type: "string", short: "n", arg: "COUNT", default: "4", help: "echo requests to send" },
    timeout: {
      type: "string",
      short: "W",
      arg: "SECONDS",
      default: "5",
      help: "how long to wait for each reply, 1..3600",
    },
    interval: {
      type: "string",
      short: "i",
      arg: "SECONDS",
      default: "1",
      help: "time between requests (fractions allowed, at least 0.01)",
    },
    size: { type: "string", short: "s", arg: "SIZE", default: "56", help: "ICMP payload bytes, 0..65000" },
  },
  notes: [TUNNEL_NOTE],
  async run(parsed) {
    if (parsed.positionals.length !== 1) throw new UsageError("expected exactly one ADDRESS");
    const target = parsed.positionals[0];
    const count = intFlag("count", parsed.values.count, 4, 1, 1_000_000);
    const timeoutMs = intFlag("timeout", parsed.values.timeout, 5, 1, 3600) * 1000;
    const intervalMs = Number(parsed.values.interval ?? "1") * 1000;
    if (!Number.isFinite(intervalMs) || intervalMs < 10) {
      throw new UsageError("--interval: expected seconds >= 0.01");
    }
    const size = intFlag("size", parsed.values.size, 56, 0, 65000);
    // Loaded when the command runs (the command table stays light for --help and the other commands).
    const [{ openTunnel }, { parseIp }, { unbracket }] = await Promise.all([
      import("../net/tunnels.ts"),
      import("../netstack/addr.ts"),
      import("../net/resolve.ts"),
    ]);
    const cfg = await loadTunnelFromFlags(parsed.values);
    // Its log lines name the tunnel as `up -c` would (wg.office for office.conf), not openTunnel's "wg0".
    const tunnel = await openTunnel(cfg, { name: tunnelNameOf(cfg.source) });
    let address = unbracket(target);
    if (!parseIp(address)) {
      // A name: the tunnel's DNS servers (asked inside the tunnel) or the OS resolver; first address wins.
      try {
        address = (await tunnel.net.resolver.resolve(address))[0];
      } catch (e) {
        tunnel.close();
        console.error(`wgedge ping: ${(e as Error).message}`);
        return 1;
      }
    }
    const dst = parseIp(address)!;
    if (!tunnel.device.hasRoute(dst)) {
      tunnel.close();
      console.error(`wgedge ping: no route to ${target}: not inside any peer's AllowedIPs`);
      return 1;
    }
    let received = 0;
    let sent = 0;
    const rtts: number[] = [];
    let stop = false;
    const onSignal = () => (stop = true);
    Deno.addSignalListener("SIGINT", onSignal);
    try {
      const shown = address === unbracket(target) ? target : `${target} (${address})`;
      console.log(`PING ${shown} through wgedge tunnel (${size} data bytes)`);
      for (let seq = 1; seq <= count && !stop; seq++) {
        const started = performance.now();
        sent++;
        try {
          const rtt = await tunnel.stack.ping(address, { seq, size, timeoutMs });
          received++;
          rtts.push(rtt);
          console.log(`${size + 8} bytes from ${address}: icmp_seq=${seq} time=${rtt.toFixed(2)} ms`);
        } catch (e) {
          console.log(`no reply from ${address}: icmp_seq=${seq} (${(e as Error).message})`);
        }
        const wait = intervalMs - (performance.now() - started);
        if (seq < count && wait > 0 && !stop) await sleep(wait);
      }
    } finally {
      Deno.removeSignalListener("SIGINT", onSignal);
      tunnel.close();
    }
    console.log(`--- ${target} ping statistics ---`);
    const loss = sent ? Math.round(100 * (sent - received) / sent) : 0;
    console.log(`${sent} packets transmitted, ${received} received, ${loss}% packet loss`);
    if (rtts.length) {
      const min = Math.min(...rtts),
        max = Math.max(...rtts),
        avg = rtts.reduce((a, b) => a + b, 0) / rtts.length;
      console.log(`rtt min/avg/max = ${min.toFixed(2)}/${avg.toFixed(2)}/${max.toFixed(2)} ms`);
    }
    return received > 0 ? 0 : 1;
  },
});
