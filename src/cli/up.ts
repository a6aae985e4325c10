/**
 * `wgedge up -c wg.conf`: brings a tunnel up in the foreground. The userspace stack answers ICMP echo on the
 * tunnel addresses; `--forward` exposes services inside the tunnel on local host ports; the tunnel serves the
 * WireGuard UAPI socket `<WG_UAPI_DIR>/<name>.sock` (`wg show wg0` for wg0.conf; `--name` to choose).
 * SIGINT/SIGTERM close everything cleanly.
 */
import { type Command, defineCommand, UsageError, waitForShutdownSignal } from "./command.ts";
import { loadTunnelConfig, TUNNEL_FLAGS, TUNNEL_NOTE, TUNNEL_USAGE } from "./tunnel_flags.ts";
import { UAPI_DIR_FLAG } from "./config_flags.ts";
import type { UapiServer } from "../net/uapi_server.ts";
import { logger } from "../util/log.ts";
import type { TcpRelay } from "../services/relay/tcp.ts";
import type { UdpRelay } from "../services/relay/udp.ts";

export const upCommand: Command = defineCommand({
  name: "up",
  summary: "Bring a WireGuard tunnel up in the foreground (answers ping on its addresses).",
  usage: `up ${TUNNEL_USAGE} [--name NAME] [--forward tcp://127.0.0.1:8080=10.0.0.1:80]... ` +
    "[--socks5 [ADDR:]PORT] [--http-proxy [ADDR:]PORT] [--proxy-user NAME]",
  flags: {
    ...TUNNEL_FLAGS,
    name: {
      type: "string",
      arg: "NAME",
      help: "the tunnel's name for wg (wg show NAME): at most 15 characters; default the config file's " +
        "base name without .conf (wg0.conf -> wg0), or main for an inline WG_CONFIG",
    },
    "uapi-dir": UAPI_DIR_FLAG,
    forward: {
      type: "string",
      multiple: true,
      arg: "PROTO://LOCAL:PORT=TUNNEL_IP:PORT",
      help: "expose a service inside the tunnel on a local port: tcp:// or udp://, IPv6 in brackets " +
        "(tcp://127.0.0.1:8080=10.0.0.1:80)",
    },
    socks5: {
      type: "string",
      arg: "[ADDR:]PORT",
      help: "a SOCKS5 proxy (CONNECT, UDP ASSOCIATE) into the tunnel; a bare port listens on 127.0.0.1",
    },
    "http-proxy": {
      type: "string",
      arg: "[ADDR:]PORT",
      help:
        "an HTTP proxy (CONNECT and http:// forwarding) into the tunnel; a bare port listens on 127.0.0.1",
    },
    "proxy-user": {
      type: "string",
      arg: "NAME",
      help:
        "the user both proxies require; its password comes from WGEDGE_PROXY_PASSWORD (required off loopback)",
    },
  },
  notes: [
    TUNNEL_NOTE,
    "Proxies dial through the tunnel and resolve names with its DNS = servers inside it.",
    "Runs until SIGINT/SIGTERM, then closes every forward, proxy and the tunnel.",
  ],
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
      { serveUapi, uapiNameProblem, UapiUnavailable },
      { startProxies },
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
      import("../net/uapi_server.ts"),
      import("../services/proxy/server.ts"),
    ]);
    const forwards = (parsed.values.forward ?? []).map(parseForward);
    const { tunnel: cfg, config } = await loadTunnelConfig(parsed.values);
    const log = logger("up");
    const name = parsed.values.name ?? tunnelNameOf(cfg.source);
    const problem = uapiNameProblem(name);
    if (problem && config.uapi.dir !== undefined) {
      throw new UsageError(
        `tunnel name ${problem}: pass --name NAME${
          parsed.values.name ? "" : ` (the name comes from ${cfg.source})`
        }` +
          ", or WG_UAPI_DIR=off for no wg socket",
      );
    }
    const tunnel = await openTunnel(cfg, { name });
    const relays: (TcpRelay | UdpRelay)[] = [];
    let uapi: UapiServer | undefined;
    const proxies: { stop(): Promise<void> }[] = [];
    try {
      if (config.uapi.dir !== undefined) {
        try {
          uapi = await serveUapi(tunnel.device, { name, dir: config.uapi.dir });
        } catch (e) {
          if (!(e instanceof UapiUnavailable)) throw e;
          log.warn("no UAPI socket (wg show/set will not see this tunnel)", { reason: e.message });
        }
      }
      proxies.push(
        ...startProxies(config.proxies ?? [], { host: hostNet, egress: tunnel.net, clock: systemClock }),
      );
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
      for (const p of proxies) await p.stop();
      uapi?.close();
      tunnel.close();
      throw e;
    }
    log.info("tunnel up", {
      name,
      addresses: cfg.iface.addresses.map(formatPrefix).join(","),
      listenPort: tunnel.device.listenPort,
      publicKey: tunnel.device.publicKey,
    });
    const sig = await waitForShutdownSignal();
    log.info("shutting down", { signal: sig });
    for (const r of relays) await r.stop();
    for (const p of proxies) await p.stop();
    uapi?.close();
    tunnel.close();
    return 0;
  },
});

/** wg-quick's rule: /etc/wireguard/wg0.conf is wg0. Inline content (named by its variable) is `main`. */
export function tunnelNameOf(source: string): string {
  if (source === "WG_CONFIG" || source === "--config") return "main";
  const base = source.slice(source.lastIndexOf("/") + 1);
  return base.endsWith(".conf") ? base.slice(0, -".conf".length) : base;
}
