/**
 * The wireguard-go hub of the namespace benchmarks (ntrip.ts, tunnels.ts): fresh keys from the reference tool,
 * the hub's configuration with N peers (one /32 each), and the hub process itself.
 */
import { expectProgram, type Proc, type Resources, run, waitUntil } from "./proc.ts";

/** Interface names must be unique machine-wide (UAPI sockets are global): they carry our pid. */
export const PID36 = Deno.pid.toString(36);

/** The environment every wireguard-go is started with. */
export const WIREGUARD_GO_ENV = {
  WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD: "1",
  LOG_LEVEL: "error",
};

export interface KeyPair {
  privateKey: string;
  publicKey: string;
}

/** Fresh keys from the reference tool, in one shell loop (one process spawn for all of them). */
export async function genKeys(count: number): Promise<KeyPair[]> {
  const script = `i=0; while [ $i -lt ${count} ]; do k=$(wg genkey); ` +
    `printf '%s %s\\n' "$k" "$(printf '%s\\n' "$k" | wg pubkey)"; i=$((i+1)); done`;
  const r = await run(["sh", "-c", script], { timeoutMs: 300_000 });
  const keys = r.stdout.trim().split("\n").map((l) => {
    const [privateKey, publicKey] = l.split(" ");
    return { privateKey, publicKey };
  });
  if (keys.length !== count || keys.some((k) => !k.publicKey)) throw new Error("wg genkey/pubkey failed");
  return keys;
}

/** The inner addresses of the tunnels in net/16 (0-based): net.1.1 .. net.1.200, net.2.1, ... */
export const tunnelIps = (net: string) => (i: number) => `${net}.${1 + Math.floor(i / 200)}.${1 + (i % 200)}`;

/** The hub's `wg setconf` file: peer i has AllowedIPs tunnelIp(i)/32 and no endpoint. */
export function hubConf(
  hub: KeyPair,
  peers: KeyPair[],
  port: number,
  tunnelIp: (i: number) => string,
): string {
  return `[Interface]\nPrivateKey = ${hub.privateKey}\nListenPort = ${port}\n` +
    peers.map((p, i) => `\n[Peer]\nPublicKey = ${p.publicKey}\nAllowedIPs = ${tunnelIp(i)}/32\n`).join("");
}

/**
 * The hub: `wireguard-go -f IFC` in namespace ns (its UAPI socket registered for removal), configured from
 * conf (written to confFile, mode 0600) by `wg setconf` once it answers. The interface has no address yet.
 */
export async function startHub(
  res: Resources,
  ns: string,
  ifc: string,
  confFile: string,
  conf: string,
): Promise<Proc> {
  res.sockets.push(`/var/run/wireguard/${ifc}.sock`);
  const proc = res.spawnIn(ns, "hub wireguard-go", ["wireguard-go", "-f", ifc], WIREGUARD_GO_ENV);
  await waitUntil(
    async () => (await run(["wg", "show", ifc], { check: false, timeoutMs: 10_000 })).code === 0,
    `hub wireguard-go ${ifc}`,
    30_000,
  );
  expectProgram(proc.pid, "wireguard-go");
  await Deno.writeTextFile(confFile, conf, { mode: 0o600 });
  await run(["wg", "setconf", ifc, confFile], { timeoutMs: 60_000 });
  return proc;
}

/** Gives interface ifc in namespace ns the address cidr and brings it up with MTU 1420. */
export async function upWithAddress(ns: string, ifc: string, cidr: string): Promise<void> {
  await run(["ip", "-n", ns, "addr", "add", cidr, "dev", ifc]);
  await run(["ip", "-n", ns, "link", "set", ifc, "mtu", "1420", "up"]);
}
