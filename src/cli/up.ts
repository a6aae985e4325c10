/**
 * `wgedge up -c wg.conf`: brings a tunnel up in the foreground. The userspace stack answers ICMP echo on the
 * tunnel addresses; `--forward` exposes services inside the tunnel on local host ports. SIGINT/SIGTERM close
 * everything cleanly.
 */
import { type Command, parseFlags, waitForShutdownSignal } from "./command.ts";
import { loadTunnelFromFlags, TUNNEL_OPTIONS, TUNNEL_USAGE } from "./tunnel_flags.ts";
import { openTunnel } from "../net/tunnels.ts";
import { logger } from "../util/log.ts";
import { formatPrefix } from "../config/ip.ts";

export const upCommand: Command = {
  name: "up",
  summary: "Bring a WireGuard tunnel up in the foreground (answers ping on its addresses).",
  usage: `up ${TUNNEL_USAGE}`,
  async run(args) {
    const parsed = parseFlags(this, args, TUNNEL_OPTIONS, false);
    if (!parsed) return 0;
    const cfg = await loadTunnelFromFlags(parsed.values);
    const log = logger("up");
    const tunnel = await openTunnel(cfg);
    log.info("tunnel up", {
      addresses: cfg.iface.addresses.map(formatPrefix).join(","),
      listenPort: tunnel.device.listenPort,
      publicKey: tunnel.device.publicKey,
    });
    const sig = await waitForShutdownSignal();
    log.info("shutting down", { signal: sig });
    tunnel.close();
    return 0;
  },
};
