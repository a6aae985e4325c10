/**
 * `wgedge ping -c wg.conf ADDRESS`: brings the tunnel up, sends ICMP echo through it and prints one line per
 * reply, like ping(8). Exit 0 if any reply arrived, 1 otherwise.
 */
import { type Command, intFlag, parseFlags, UsageError } from "./command.ts";
import { loadTunnelFromFlags, TUNNEL_OPTIONS, TUNNEL_USAGE } from "./tunnel_flags.ts";
import { openTunnel } from "../net/tunnels.ts";
import { parseIp } from "../netstack/addr.ts";
import { unbracket } from "../net/resolve.ts";

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export const pingCommand: Command = {
  name: "ping",
  summary: "Send ICMP echo through a tunnel; exit 0 if any reply arrived.",
  usage: `ping ${TUNNEL_USAGE} [-n COUNT] [-W SECONDS] [-i SECONDS] [-s SIZE] ADDRESS`,
  async run(args) {
    const parsed = parseFlags(this, args, {
      ...TUNNEL_OPTIONS,
      count: { type: "string", short: "n" },
      timeout: { type: "string", short: "W" },
      interval: { type: "string", short: "i" },
      size: { type: "string", short: "s" },
    });
    if (!parsed) return 0;
    if (parsed.positionals.length !== 1) throw new UsageError("expected exactly one ADDRESS");
    const target = parsed.positionals[0];
    const count = intFlag("count", parsed.values.count, 4, 1, 1_000_000);
    const timeoutMs = intFlag("timeout", parsed.values.timeout, 5, 1, 3600) * 1000;
    const intervalMs = Number(parsed.values.interval ?? "1") * 1000;
    if (!Number.isFinite(intervalMs) || intervalMs < 10) {
      throw new UsageError("--interval: expected seconds >= 0.01");
    }
    const size = intFlag("size", parsed.values.size, 56, 0, 65000);
    const cfg = await loadTunnelFromFlags(parsed.values);
    const tunnel = await openTunnel(cfg);
    const dst = parseIp(unbracket(target));
    if (dst && !tunnel.device.hasRoute(dst)) {
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
      console.log(`PING ${target} through wgedge tunnel (${size} data bytes)`);
      for (let seq = 1; seq <= count && !stop; seq++) {
        const started = performance.now();
        sent++;
        try {
          const rtt = await tunnel.stack.ping(target, { seq, size, timeoutMs });
          received++;
          rtts.push(rtt);
          console.log(`${size + 8} bytes from ${target}: icmp_seq=${seq} time=${rtt.toFixed(2)} ms`);
        } catch (e) {
          console.log(`no reply from ${target}: icmp_seq=${seq} (${(e as Error).message})`);
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
};
