/**
 * Network-namespace and wireguard-go harness for interop tests (recipe: shared/spec/testing.md).
 *
 * A test that needs root, `ip netns` or wireguard-go is declared ignored (with a printed reason) locally, and
 * FAILS when WGEDGE_REQUIRE_INTEROP=1 (CI) so a missing tool can never pass silently. capabilityTest() does the
 * same for any other capability (libcrypto through FFI, a glibc feature, a reference tool).
 */
import { waitFor } from "./wait.ts";

/** CI sets WGEDGE_REQUIRE_INTEROP=1: there a test that cannot run fails instead of being ignored. */
export const REQUIRED = Deno.env.get("WGEDGE_REQUIRE_INTEROP") === "1";
const DENO = Deno.execPath();
export const MAIN_TS = new URL("../../main.ts", import.meta.url).pathname;
export const DENO_JSON = new URL("../../deno.json", import.meta.url).pathname;

const found = new Map<string, boolean>();

/**
 * Whether `tool` is an executable file on PATH. Synchronous (stat calls, no subprocess): it runs when a test
 * file registers its tests, for every interop test of every file, so it has to be cheap; answers are cached.
 */
export function onPath(tool: string): boolean {
  let hit = found.get(tool);
  if (hit !== undefined) return hit;
  hit = false;
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    if (!dir) continue;
    try {
      const st = Deno.statSync(`${dir}/${tool}`);
      if (st.isFile && ((st.mode ?? 0o111) & 0o111) !== 0) {
        hit = true;
        break;
      }
    } catch { /* not in this directory */ }
  }
  found.set(tool, hit);
  return hit;
}

/** null when interop tests (root, ip netns, wireguard-go, wg and `tools`) can run here, else why not. */
export function interopUnavailableSync(tools: string[] = []): string | null {
  if (Deno.build.os !== "linux") return "not Linux";
  if (Deno.uid() !== 0) return "not root";
  for (const t of ["ip", "wireguard-go", "wg", ...tools]) if (!onPath(t)) return `${t} not installed`;
  return null;
}

/** interopUnavailableSync for callers that await (the benchmark scripts). */
export function interopUnavailable(tools: string[] = []): Promise<string | null> {
  return Promise.resolve(interopUnavailableSync(tools));
}

const told = new Set<string>();

/**
 * Registers a test that needs something the machine may lack (`why`: null when it is there, else the reason).
 * Locally a test that cannot run is declared `ignore` (reported as ignored, never as ok) and the reason is
 * printed once per reason; with WGEDGE_REQUIRE_INTEROP=1 (CI) it is registered and FAILS with the reason.
 */
export function capabilityTest(
  def: Deno.TestDefinition,
  why: string | null,
): void {
  if (why === null) {
    Deno.test(def);
    return;
  }
  if (REQUIRED) {
    Deno.test({
      ...def,
      fn() {
        throw new Error(`required (WGEDGE_REQUIRE_INTEROP=1) but unavailable: ${why}`);
      },
    });
    return;
  }
  if (!told.has(why)) {
    told.add(why);
    console.warn(
      `ignored here (they FAIL with WGEDGE_REQUIRE_INTEROP=1): tests that need what is missing: ${why}`,
    );
  }
  Deno.test({ ...def, ignore: true });
}

/**
 * Deno.test for interop (root, ip netns, wireguard-go, wg and opts.tools): runs when the machine can, is
 * declared ignored with a printed reason when it cannot, and fails in CI (WGEDGE_REQUIRE_INTEROP=1) when it
 * cannot.
 */
export function interopTest(
  name: string,
  fn: (t: Deno.TestContext) => Promise<void>,
  opts: { tools?: string[] } = {},
): void {
  capabilityTest(
    { name, sanitizeOps: false, sanitizeResources: false, fn },
    interopUnavailableSync(opts.tools ?? []),
  );
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export async function run(cmd: string[], opts: { stdin?: string; check?: boolean } = {}): Promise<RunResult> {
  const child = new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    stdin: opts.stdin !== undefined ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const out = await child.output();
  const res = {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
  if (opts.check !== false && res.code !== 0) {
    throw new Error(`${cmd.join(" ")} exited ${res.code}: ${res.stderr || res.stdout}`);
  }
  return res;
}

let counter = 0;

/** A network namespace created for one test; destroy() removes it and everything spawned in it. */
export class Netns {
  readonly children: Deno.ChildProcess[] = [];
  readonly cleanups: (() => Promise<void> | void)[] = [];

  private constructor(readonly name: string) {}

  static async create(prefix = "wge"): Promise<Netns> {
    const name = `${prefix}-${Deno.pid}-${++counter}-${Math.floor(Math.random() * 1e6)}`;
    await run(["ip", "netns", "add", name]);
    const ns = new Netns(name);
    await ns.exec(["ip", "link", "set", "lo", "up"]);
    return ns;
  }

  exec(cmd: string[], opts: { stdin?: string; check?: boolean } = {}): Promise<RunResult> {
    return run(["ip", "netns", "exec", this.name, ...cmd], opts);
  }

  /** Starts a long-running process inside the namespace; killed by destroy(). */
  spawn(
    cmd: string[],
    opts: {
      env?: Record<string, string>;
      stdout?: "piped" | "null" | "inherit";
      stderr?: "piped" | "null" | "inherit";
      stdin?: "piped" | "null";
    } = {},
  ): Deno.ChildProcess {
    const envArgs = opts.env ? ["env", ...Object.entries(opts.env).map(([k, v]) => `${k}=${v}`)] : [];
    const child = new Deno.Command("ip", {
      args: ["netns", "exec", this.name, ...envArgs, ...cmd],
      stdin: opts.stdin ?? "null",
      stdout: opts.stdout ?? "null",
      stderr: opts.stderr ?? "null",
    }).spawn();
    this.children.push(child);
    return child;
  }

  /** Runs wgedge (deno run [denoFlags] main.ts ...) inside the namespace. */
  spawnWgedge(
    args: string[],
    opts: {
      env?: Record<string, string>;
      stdout?: "piped" | "null" | "inherit";
      stderr?: "piped" | "null" | "inherit";
      stdin?: "piped" | "null";
      /** Extra `deno run` flags (benchmarks: --cpu-prof). */
      denoFlags?: string[];
    } = {},
  ): Deno.ChildProcess {
    // No UAPI socket unless the test asks for one (WG_UAPI_DIR in opts.env): socket names are machine-wide, so
    // two test runs whose tunnels share a name (wgedge.conf -> "wgedge", serve's "main") would refuse each other.
    return this.spawn(
      [DENO, "run", "-A", ...(opts.denoFlags ?? []), "--config", DENO_JSON, MAIN_TS, ...args],
      { ...opts, env: { WG_UAPI_DIR: "off", ...opts.env } },
    );
  }

  async destroy(): Promise<void> {
    for (const c of this.cleanups.reverse()) {
      try {
        await c();
      } catch { /* best effort */ }
    }
    for (const c of this.children) {
      try {
        c.kill("SIGKILL");
      } catch { /* already gone */ }
      try {
        await c.status;
      } catch { /* ignore */ }
    }
    await run(["ip", "netns", "pids", this.name], { check: false }).then(async (r) => {
      for (const pid of r.stdout.split(/\s+/).filter(Boolean)) {
        await run(["kill", "-9", pid], { check: false });
      }
    });
    await run(["ip", "netns", "del", this.name], { check: false });
  }
}

export interface WgPeerSpec {
  publicKey: string;
  allowedIps: string[];
  endpoint?: string;
  presharedKey?: string;
  persistentKeepalive?: number;
}

export interface WgGoSpec {
  privateKey: string;
  listenPort?: number;
  addresses: string[];
  peers: WgPeerSpec[];
  mtu?: number;
}

/**
 * Interface names must be unique machine-wide, not just per namespace: wireguard-go's UAPI socket
 * (/var/run/wireguard/<name>.sock) is global, so two parallel test processes that picked the same name would
 * configure each other's wireguard-go. Random names, and a check that the socket is free.
 */
async function freeInterfaceName(): Promise<string> {
  for (let i = 0; i < 20; i++) {
    const rnd = crypto.getRandomValues(new Uint32Array(1))[0].toString(36).padStart(7, "0");
    const name = `wgt${rnd}`.slice(0, 15);
    try {
      await Deno.stat(`/var/run/wireguard/${name}.sock`);
    } catch {
      return name;
    }
  }
  throw new Error("no free wireguard interface name");
}

/** A wireguard-go interface inside a namespace, configured with `wg set` (keys passed through files). */
export class WireguardGo {
  private constructor(readonly ns: Netns, readonly ifname: string, readonly child: Deno.ChildProcess) {}

  static async start(ns: Netns, spec: WgGoSpec): Promise<WireguardGo> {
    const ifname = await freeInterfaceName();
    const child = ns.spawn(["wireguard-go", "-f", ifname], {
      env: { WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1", LOG_LEVEL: "error" },
    });
    ns.cleanups.push(async () => {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await Deno.remove(`/var/run/wireguard/${ifname}.sock`).catch(() => {});
    });
    // wireguard-go creates its UAPI socket asynchronously; poll (bounded) until `wg` can talk to it.
    let lastError = "";
    await waitFor(async () => {
      const r = await ns.exec(["wg", "show", ifname], { check: false });
      lastError = r.stderr;
      return r.code === 0;
    }, `wireguard-go ${ifname} to come up`).catch(() => {
      throw new Error(`wireguard-go ${ifname} did not come up: ${lastError}`);
    });
    const wg = new WireguardGo(ns, ifname, child);
    const dir = await Deno.makeTempDir({ prefix: "wgedge-test-" });
    ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
    const keyFile = `${dir}/private.key`;
    await Deno.writeTextFile(keyFile, spec.privateKey + "\n", { mode: 0o600 });
    const args = ["wg", "set", ifname, "private-key", keyFile];
    if (spec.listenPort) args.push("listen-port", String(spec.listenPort));
    await ns.exec(args);
    for (const [i, p] of spec.peers.entries()) await wg.setPeer(p, `${dir}/psk${i}`);
    for (const a of spec.addresses) await ns.exec(["ip", "addr", "add", a, "dev", ifname]);
    await ns.exec(["ip", "link", "set", ifname, "mtu", String(spec.mtu ?? 1420), "up"]);
    return wg;
  }

  async setPeer(p: WgPeerSpec, pskFile?: string): Promise<void> {
    const args = ["wg", "set", this.ifname, "peer", p.publicKey, "allowed-ips", p.allowedIps.join(",")];
    if (p.endpoint) args.push("endpoint", p.endpoint);
    if (p.persistentKeepalive) args.push("persistent-keepalive", String(p.persistentKeepalive));
    if (p.presharedKey) {
      const f = pskFile ?? (await Deno.makeTempFile({ prefix: "wgedge-psk-" }));
      await Deno.writeTextFile(f, p.presharedKey + "\n", { mode: 0o600 });
      args.push("preshared-key", f);
    }
    await this.ns.exec(args);
  }

  /** `wg show <if> <what>` output (e.g. "latest-handshakes", "transfer", "endpoints"). */
  async show(what: string): Promise<string> {
    return (await this.ns.exec(["wg", "show", this.ifname, what])).stdout;
  }
}

/** Fresh key pair via `wg genkey`/`wg pubkey` (the reference tool, so tests never trust our own encoding). */
export async function wgKeyPair(): Promise<{ privateKey: string; publicKey: string }> {
  const privateKey = (await run(["wg", "genkey"])).stdout.trim();
  const publicKey = (await run(["wg", "pubkey"], { stdin: privateKey + "\n" })).stdout.trim();
  return { privateKey, publicKey };
}

export async function wgPsk(): Promise<string> {
  return (await run(["wg", "genpsk"])).stdout.trim();
}

export { WAIT_FOR_MIN_MS, waitFor, type WaitOptions } from "./wait.ts";

/** Collects a child's piped stream into a growing string (for waiting on log lines). */
export function collect(stream: ReadableStream<Uint8Array>): { text: () => string; done: Promise<void> } {
  let buf = "";
  const dec = new TextDecoder();
  const done = (async () => {
    try {
      for await (const chunk of stream) buf += dec.decode(chunk, { stream: true });
    } catch { /* closed */ }
  })();
  return { text: () => buf, done };
}
