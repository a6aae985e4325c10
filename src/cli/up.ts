/**
 * `wgedge up -c wg.conf`: brings a tunnel up in the foreground. The userspace stack answers ICMP echo on the
 * tunnel addresses; `--forward` exposes services inside the tunnel on local host ports. SIGINT/SIGTERM close
 * everything cleanly.
 */
import { type Command, defineCommand, waitForShutdownSignal } from "./command.ts";
import { loadTunnelFromFlags, TUNNEL_FLAGS, TUNNEL_NOTE, TUNNEL_USAGE } from "./tunnel_flags.ts";
import { logger } from "../util/log.ts";
import type { TcpRelay } from "../services/relay/tcp.ts";
import type { UdpRelay } from "../services/relay/udp.ts";

export const upCommand: Command = defineCommand({
  name: "up",
  summary: "Bring a WireGuard tunnel up in the foreground (answers ping on its addresses).",
  usage: `up ${TUNNEL_USAGE} [--forward tcp://127.0.0.1:8080=10.0.0.1:80]...`,
  flags: {
    ...TUNNEL_FLAGS,
    forward: {
      type: "string",
      multiple: true,
      arg: "PROTO://LOCAL:PORT=TUNNEL_IP:PORT",
      help: "expose a service inside the tunnel on a local port: tcp:// or udp://, IPv6 in brackets " +
        "(tcp://127.0.0.1:8080=10.0.0.1:80)",
    },
  },
  notes: [TUNNEL_NOTE, "Runs until SIGINT/SIGTERM, then closes every forward and the tunnel."],
  async run(parsed) {
    // Loaded when the command runs (the command table stays light for --help and the other commands).
    const [
      { openTunnel },
      { formatHostPort, formatPrefix },
      { parseIp },
      { parseForward },
      { RELAY_DEFAULTS },
      { TcpRelay },
      { UdpRelay },
      { hostNet },
      { osResolver },
      { systemClock },
    ] = await Promise.all([
      import("../net/tunnels.ts"),
      import("../config/ip.ts"),
      import("../netstack/addr.ts"),
      import("./forward.ts"),
      import("../config/relay.ts"),
      import("../services/relay/tcp.ts"),
      import("../services/relay/udp.ts"),
      import("../net/host.ts"),
      import("../net/resolve.ts"),
      import("../util/clock.ts"),
    ]);
    const forwards = (parsed.values.forward ?? []).map(parseForward);
    const cfg = await loadTunnelFromFlags(parsed.values);
    const log = logger("up");
    const tunnel = await openTunnel(cfg);
    const relays: (TcpRelay | UdpRelay)[] = [];
    try {
      for (const spec of forwards) {
        const relay = spec.protocol === "tcp"
          ? new TcpRelay(spec, RELAY_DEFAULTS, {
            listenNet: hostNet,
            egress: tunnel.net,
            log: logger("forward"),
          })
          : new UdpRelay(spec, RELAY_DEFAULTS, {
            listenNet: hostNet,
            egress: tunnel.net,
            resolver: osResolver,
            clock: systemClock,
            log: logger("forward"),
          });
        relay.start();
        relays.push(relay);
        const target = parseIp(spec.outHost);
        if (target && !tunnel.device.hasRoute(target)) {
          log.warn("forward target is not inside any peer's AllowedIPs: connections to it will fail", {
            to: spec.outHost,
          });
        }
        log.info("forwarding", {
          from: relay.listenAddr,
          to: formatHostPort({ host: spec.outHost, port: spec.outPort }),
          protocol: spec.protocol,
        });
      }
    } catch (e) {
      for (const r of relays) await r.stop();
      tunnel.close();
      throw e;
    }
    log.info("tunnel up", {
      addresses: cfg.iface.addresses.map(formatPrefix).join(","),
      listenPort: tunnel.device.listenPort,
      publicKey: tunnel.device.publicKey,
    });
    const sig = await waitForShutdownSignal();
    log.info("shutting down", { signal: sig });
    for (const r of relays) await r.stop();
    tunnel.close();
    return 0;
  },
});
