/** Shared by the rp process tests: tunnel configs for an rps/rpc pair and spawning wgedge processes. */
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { randomBytes } from "../src/util/random.ts";
import { collect, DENO_JSON, MAIN_TS, waitFor } from "./helpers/interop.ts";

export interface RpPairConfigs {
  dir: string;
  serverConf: string;
  clientConf: string;
  serverPublicKey: string;
  clientPublicKey: string;
  wgPort: number;
}

/**
 * Writes a server and a client wg-quick config (server 10.66.0.1/24 + fd66::1, client .2, a shared
 * PresharedKey) into a temp dir.
 */
export async function writePairConfigs(wgPort: number): Promise<RpPairConfigs> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-rp-" });
  const sk = generatePrivateKey(), ck = generatePrivateKey();
  const serverPublicKey = encodeKey(publicKey(sk)), clientPublicKey = encodeKey(publicKey(ck));
  const serverConf = `${dir}/server.conf`, clientConf = `${dir}/client.conf`;
  // A PresharedKey on both sides (wg-rp ignored it; here the tunnel must come up with it).
  const psk = encodeKey(randomBytes(32));
  await Deno.writeTextFile(
    serverConf,
    `[Interface]\nPrivateKey = ${
      encodeKey(sk)
    }\nAddress = 10.66.0.1/24, fd66::1/64\nListenPort = ${wgPort}\n\n` +
      `[Peer]\nPublicKey = ${clientPublicKey}\nPresharedKey = ${psk}\nAllowedIPs = 10.66.0.2/32, fd66::2/128\n`,
    { mode: 0o600 },
  );
  await Deno.writeTextFile(
    clientConf,
    `[Interface]\nPrivateKey = ${encodeKey(ck)}\nAddress = 10.66.0.2/32, fd66::2/128\n\n` +
      `[Peer]\nPublicKey = ${serverPublicKey}\nPresharedKey = ${psk}\nEndpoint = 127.0.0.1:${wgPort}\nAllowedIPs = 10.66.0.0/24, fd66::/64\n` +
      `PersistentKeepalive = 25\n`,
    { mode: 0o600 },
  );
  return { dir, serverConf, clientConf, serverPublicKey, clientPublicKey, wgPort };
}

/** A wgedge child process with its stderr collected (the log). */
export class WgedgeProcess {
  readonly log: { text: () => string; done: Promise<void> };
  readonly out: { text: () => string; done: Promise<void> };
  #status: Promise<Deno.CommandStatus>;
  exited: Deno.CommandStatus | undefined;

  constructor(readonly args: string[], env: Record<string, string> = {}) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", DENO_JSON, MAIN_TS, ...args],
      env: { WGEDGE_LOG_LEVEL: "info", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.child = child;
    this.log = collect(child.stderr);
    this.out = collect(child.stdout);
    this.#status = child.status.then((s) => (this.exited = s));
  }

  readonly child: Deno.ChildProcess;

  get pid(): number {
    return this.child.pid;
  }

  async waitLog(text: string, what = text, tries = 600): Promise<void> {
    await waitFor(() => this.log.text().includes(text) || this.exited !== undefined, what, tries, 50);
    if (!this.log.text().includes(text)) {
      throw new Error(`process exited before "${what}":\n${this.log.text()}`);
    }
  }

  countLog(text: string): number {
    return this.log.text().split(text).length - 1;
  }

  kill(sig: Deno.Signal = "SIGTERM"): void {
    try {
      this.child.kill(sig);
    } catch { /* gone */ }
  }

  async status(): Promise<Deno.CommandStatus> {
    const s = await this.#status;
    await Promise.allSettled([this.log.done, this.out.done]);
    return s;
  }

  /** SIGKILL if still running, then reap. */
  async stop(): Promise<void> {
    if (this.exited === undefined) this.kill("SIGKILL");
    await this.status();
  }
}

export async function adminJson(
  port: number,
  path: string,
  method = "GET",
): Promise<Record<string, unknown>> {
  // State-changing admin requests carry X-Wgedge (the admin API's cross-site guard).
  const headers = method === "GET" || method === "HEAD" ? undefined : { "x-wgedge": "1" };
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { method, headers });
  const text = await res.text();
  try {
    return { status: res.status, ...JSON.parse(text) };
  } catch {
    return { status: res.status, text };
  }
}

export async function adminMappings(port: number): Promise<Record<string, unknown>[]> {
  const j = await adminJson(port, "/api/v1/port-mappings");
  return (j.mappings ?? []) as Record<string, unknown>[];
}
