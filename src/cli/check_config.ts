/**
 * `wgedge check-config`: load the configuration exactly as `serve` would and print the effective result with
 * secrets redacted, or every problem (one per line, `source:line: key: expected ...`) and exit 1.
 */
import { type Command, defineCommand, type FlagTable } from "./command.ts";
import type { ConfigError, Flags } from "../config/mod.ts";
import {
  ADMIN_LISTEN_FLAG,
  ENV_FILE_FLAG,
  LOG_FLAGS,
  RELAY_FLAG,
  RELAY_OPTION_FLAGS,
  TUNNEL_OVERRIDE_FLAGS,
  UAPI_DIR_FLAG,
  WG_CONFIG_FLAG,
} from "./config_flags.ts";
import type { WgConfig } from "../wireguard/config.ts";
import type * as X25519 from "../crypto/x25519.ts";
import { joinHostPort } from "../util/host_port.ts";

function isPrefixShape(v: Record<string, unknown>): boolean {
  const keys = Object.keys(v);
  return keys.length === 2 && typeof v.address === "string" && typeof v.prefix === "number";
}

function isEndpointShape(v: Record<string, unknown>): boolean {
  const keys = Object.keys(v);
  return keys.length === 2 && typeof v.host === "string" && typeof v.port === "number";
}

/** Compact text for leaf-like values: prefixes as a/len, endpoints as host:port. */
function leaf(v: unknown): string | undefined {
  if (v === null) return "null";
  if (typeof v !== "object") return String(v);
  const o = v as Record<string, unknown>;
  if (isPrefixShape(o)) return `${o.address}/${o.prefix}`;
  if (isEndpointShape(o)) {
    return joinHostPort(String(o.host), String(o.port));
  }
  return undefined;
}

/** Indented `key: value` text of a redacted (JSON-able) config. */
export function renderText(value: unknown, indent = ""): string[] {
  const out: string[] = [];
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    out.push(indent + (leaf(value) ?? JSON.stringify(value)));
    return out;
  }
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    const simple = leaf(v);
    if (simple !== undefined) {
      out.push(`${indent}${k}: ${simple}`);
    } else if (Array.isArray(v)) {
      const leaves = v.map(leaf);
      if (v.length === 0) out.push(`${indent}${k}: (none)`);
      else if (leaves.every((x) => x !== undefined)) out.push(`${indent}${k}: ${leaves.join(", ")}`);
      else {
        out.push(`${indent}${k}:`);
        for (const item of v) {
          const lines = renderText(item, indent + "    ");
          if (lines.length > 0) lines[0] = `${indent}  - ${lines[0].trimStart()}`;
          out.push(...lines);
        }
      }
    } else {
      const nested = renderText(v, indent + "  ");
      out.push(nested.length === 0 ? `${indent}${k}: (none)` : `${indent}${k}:`, ...nested);
    }
  }
  return out;
}

function isWgConfig(v: unknown): v is WgConfig {
  const iface = (v as WgConfig | undefined)?.iface;
  return typeof v === "object" && v !== null && iface?.privateKey instanceof Uint8Array && Array.isArray(
    (v as WgConfig).peers,
  );
}

/**
 * Adds each tunnel's public key (derived from its private key) next to the redacted private key: it is what
 * an operator pastes into the other side's [Peer], and it is not a secret.
 */
function withPublicKeys(value: unknown, x: typeof X25519): unknown {
  if (isWgConfig(value)) {
    return {
      ...value,
      iface: { publicKey: x.encodeKey(x.publicKey(value.iface.privateKey)), ...value.iface },
    };
  }
  if (value instanceof Map) return new Map([...value].map(([k, v]) => [k, withPublicKeys(v, x)]));
  if (
    typeof value === "object" && value !== null && !Array.isArray(value) && !(value instanceof Uint8Array)
  ) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, withPublicKeys(v, x)]));
  }
  return value;
}

/**
 * Every flag the loader's sections read, so `check-config` can check exactly the invocation `serve` or `up`
 * would get. (Secrets have no flags: argv is visible to every user in ps.)
 */
export const LOADER_FLAGS = {
  config: WG_CONFIG_FLAG,
  ...TUNNEL_OVERRIDE_FLAGS,
  address: { ...TUNNEL_OVERRIDE_FLAGS.address, multiple: true },
  "admin-listen": ADMIN_LISTEN_FLAG,
  ...LOG_FLAGS,
  relay: RELAY_FLAG,
  ...RELAY_OPTION_FLAGS,
  "uapi-dir": UAPI_DIR_FLAG,
  "ntrip-stations": {
    type: "string",
    arg: "FILE",
    env: "NTRIP_STATIONS",
    help: "NTRIP relay stations (a JSON file, or the JSON itself), as `ntrip relay -c` takes them",
  },
} as const satisfies FlagTable;

export const checkConfigCommand: Command = defineCommand({
  name: "check-config",
  summary: "Validate the config: print it (secrets hidden) or every error with source and line.",
  usage:
    "check-config [-c FILE] [--env-file FILE] [--json] [the config flags of serve/up: -r RELAY, --mtu N, ...]",
  flags: {
    ...LOADER_FLAGS,
    "env-file": ENV_FILE_FLAG,
    json: {
      type: "boolean",
      help:
        "print the result as JSON on stdout: {valid, warnings, config} or {valid: false, errors, warnings}",
    },
  },
  notes: [
    "Reads flags, the environment and the env file exactly as serve and up do (flag > environment > env " +
    "file > config file > default). Exit 0 when valid, 1 with one line per problem.",
  ],
  async run(parsed) {
    // Loaded when the command runs, so `wgedge --help` and the other commands do not load the config loaders.
    const [{ ConfigErrors, loadConfig }, { redactConfig }, x25519, { describeRpsPorts }] = await Promise.all([
      import("../config/mod.ts"),
      import("../config/redact.ts"),
      import("../crypto/x25519.ts"),
      import("../config/rp.ts"),
    ]);
    const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
    const flags: Flags = {};
    for (const name of Object.keys(LOADER_FLAGS)) flags[name] = values[name];
    let loaded;
    try {
      loaded = await loadConfig({
        env: Deno.env.toObject(),
        flags,
        envFile: values["env-file"] as string | undefined,
      });
    } catch (e) {
      const errors = inFileOrder(ConfigErrors.flatten(e));
      // Warnings too: an unknown key (a typo) is often why a required one is reported missing.
      const warnings = e instanceof ConfigErrors ? e.warnings : [];
      if (values.json) {
        // Machine-readable for scripts; the messages are the same (they never contain secrets).
        console.log(
          JSON.stringify({ valid: false, errors: errors.map((err) => err.message), warnings }, null, 2),
        );
      } else {
        for (const w of warnings) console.error(`warning: ${w}`);
        for (const err of errors) console.error(err.message);
      }
      console.error(`check-config: ${errors.length} error${errors.length === 1 ? "" : "s"}`);
      return 1;
    }
    for (const w of loaded.warnings) console.error(`warning: ${w}`);
    const config = loaded.config;
    // The rps port policy in words (the default RPS_ALLOW_PORTS and what it leaves out), not range objects.
    const shown = config.rps
      ? { ...config, rps: { ...config.rps, ...describeRpsPorts(config.rps), ownPorts: undefined } }
      : config;
    const redacted = redactConfig(withPublicKeys(shown, x25519));
    // The same shape as the failure report (valid, warnings), so a script checks `.valid` either way.
    if (values.json) {
      console.log(JSON.stringify({ valid: true, warnings: loaded.warnings, config: redacted }, null, 2));
    } else console.log(renderText(redacted).join("\n"));
    return 0;
  },
});

/**
 * The errors grouped by source (in order of first appearance) and by line within each: the loader reports
 * them section by section, so an env file's errors came out as lines 2, 5, 3, 4, 1.
 */
function inFileOrder(errors: ConfigError[]): ConfigError[] {
  const sources = [...new Set(errors.map((e) => e.source))];
  return errors.map((e, i) => ({ e, i })).sort((a, b) =>
    sources.indexOf(a.e.source) - sources.indexOf(b.e.source) || (a.e.line ?? 0) - (b.e.line ?? 0) ||
    a.i - b.i
  ).map(({ e }) => e);
}
