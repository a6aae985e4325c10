/**
 * Flags that the config loader reads (src/config/), declared once with the environment variable each one
 * overrides, for every command that passes them on: serve, relay, up, ping, check-config. Precedence is
 * flag > environment > env file > config file > default. (Secrets have no flags: argv is visible in ps.)
 */
import type { FlagSpec } from "./command.ts";
import { DEFAULT_ADMIN_LISTEN } from "../config/admin.ts";
import { RELAY_DEFAULTS } from "../config/relay.ts";
import { DEFAULT_MTU } from "../wireguard/config.ts";

export const ENV_FILE_FLAG = {
  type: "string",
  arg: "FILE",
  env: "WGEDGE_ENV_FILE",
  help: "read settings (VAR=value lines) from FILE; the real environment overrides them",
} as const satisfies FlagSpec;

/** --admin-listen for commands that serve the admin API only when asked (relay, rps, rpc). */
export const ADMIN_LISTEN_ON_REQUEST_FLAG = {
  type: "string",
  arg: "HOST:PORT",
  env: "WGEDGE_ADMIN_LISTEN",
  help: "serve the admin API (status, metrics, dashboard) on HOST:PORT; without this flag or its variable " +
    "there is none",
} as const satisfies FlagSpec;

/** --admin-listen for commands that always serve the admin API (serve, check-config checks it). */
export const ADMIN_LISTEN_FLAG = {
  type: "string",
  arg: "HOST:PORT",
  default: DEFAULT_ADMIN_LISTEN,
  env: "WGEDGE_ADMIN_LISTEN",
  help: 'where the admin API listens (":8081" = every address; off loopback it needs WGEDGE_ADMIN_TOKEN)',
} as const satisfies FlagSpec;

export const WG_CONFIG_FLAG = {
  type: "string",
  short: "c",
  arg: "FILE",
  env: "WG_CONFIG",
  help: "the tunnel: a wg-quick file, or its content inline (INI or PrivateKey|PublicKey|Endpoint|ClientIP)",
} as const satisfies FlagSpec;

/** Where tunnels serve `wg`'s UAPI socket (src/config/uapi.ts). */
export const UAPI_DIR_FLAG = {
  type: "string",
  arg: "DIR|off",
  default: "/var/run/wireguard",
  env: "WG_UAPI_DIR",
  help: "directory of the WireGuard UAPI sockets (<name>.sock, for wg show / wg set); off = none",
} as const satisfies FlagSpec;

/** The single overrides applied on top of the WG_CONFIG tunnel. */
export const TUNNEL_OVERRIDE_FLAGS = {
  address: {
    type: "string",
    arg: "PREFIXES",
    env: "WG_ADDRESS",
    help: "tunnel addresses, comma separated (10.0.0.2/32,fd00::2/128); replace every Address in the config",
  },
  "listen-port": {
    type: "string",
    arg: "N",
    env: "WG_LISTEN_PORT",
    help: "UDP port WireGuard listens on, 0..65535 (0 = any free port); replaces ListenPort",
  },
  mtu: {
    type: "string",
    arg: "N",
    default: `the config's MTU, else ${DEFAULT_MTU}`,
    env: "WG_MTU",
    help: "tunnel MTU, 576..65535 (IPv6 needs 1280 or more); replaces MTU",
  },
  endpoint: {
    type: "string",
    arg: "HOST:PORT",
    env: "WG_ENDPOINT",
    help: "endpoint of the first [Peer] (IP:port, [IPv6]:port or name:port); replaces its Endpoint",
  },
} as const satisfies Record<string, FlagSpec>;

export const RELAY_FLAG = {
  type: "string",
  short: "r",
  multiple: true,
  arg: "SPEC",
  env: "RELAY_N",
  help: 'a port relay "IN_PORT;OUT_PORT;OUT_HOST;TCP|UDP[;OPTION=VALUE]...", options bind, via, ' +
    "udp_timeout, max_flows, proxy_protocol (README.md); added to the RELAY_N variables",
} as const satisfies FlagSpec;

const yesNo = (b: boolean) => (b ? "y" : "n");

/** The relays' global settings (the FLAG_FOR table of src/config/relay.ts). */
export const RELAY_OPTION_FLAGS = {
  "connect-timeout": {
    type: "string",
    arg: "SECONDS",
    default: String(RELAY_DEFAULTS.connectTimeoutMs / 1000),
    env: "CONNECT_TIMEOUT",
    help: "how long a TCP relay waits for its target to accept a connection, 1..3600",
  },
  logging: {
    type: "string",
    arg: "y|n",
    default: yesNo(RELAY_DEFAULTS.logging),
    env: "ENABLE_LOGGING",
    help: "log each relayed connection and UDP flow",
  },
  "health-check": {
    type: "string",
    arg: "y|n",
    default: yesNo(RELAY_DEFAULTS.healthCheck),
    env: "ENABLE_HEALTH_CHECK",
    help: "probe each relay's target periodically and report it up or down (HEALTH_CHECK_* tune it)",
  },
} as const satisfies Record<string, FlagSpec>;

export const LOG_FLAGS = {
  "log-level": {
    type: "string",
    arg: "LEVEL",
    default: "info",
    env: "WGEDGE_LOG_LEVEL",
    help: "debug, info, warn or error",
  },
  "log-format": {
    type: "string",
    arg: "FORMAT",
    default: "text",
    env: "WGEDGE_LOG_FORMAT",
    help: "text or json (one object per line)",
  },
} as const satisfies Record<string, FlagSpec>;

/** Flags rps and rpc share; each side reads them from its own RPS_* / RPC_* variables (src/config/rp.ts). */
export function rpSharedFlags(side: "RPS" | "RPC") {
  return {
    verbose: { type: "boolean", short: "v", help: "debug logging (like WGEDGE_LOG_LEVEL=debug)" },
    buffer: {
      type: "string",
      short: "b",
      arg: "KB",
      default: "32",
      env: `${side}_BUFFER_KB`,
      help: "copy buffer per direction of each connection, KiB, 1..16384",
    },
    "udp-timeout": {
      type: "string",
      arg: "SECONDS",
      default: "60",
      env: `${side}_UDP_TIMEOUT`,
      help: "idle time after which a UDP flow of a mapping is dropped",
    },
  } as const satisfies Record<string, FlagSpec>;
}
