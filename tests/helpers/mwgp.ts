/**
 * Topology for mwgp interop tests: a "hub" namespace holding the WireGuard servers and wgedge mwgp, and one
 * namespace per client joined to the hub by a veth pair (hub side 192.168.N.1, client side 192.168.N.2), so
 * every ping really crosses a tunnel instead of being short-circuited by local routing.
 */
import { collect, Netns, waitFor } from "./interop.ts";

export class MwgpTopology {
  readonly clients: Netns[] = [];
  readonly dir: string;

  private constructor(readonly hub: Netns, dir: string) {
    this.dir = dir;
  }

  static async create(): Promise<MwgpTopology> {
    const hub = await Netns.create("mwh");
    const dir = await Deno.makeTempDir({ prefix: "wgedge-mwgp-" });
    hub.cleanups.push(() => Deno.remove(dir, { recursive: true }));
    return new MwgpTopology(hub, dir);
  }

  /** A client namespace joined to the hub; returns it with the hub-side address. */
  async addClient(n: number): Promise<{ ns: Netns; hubAddr: string }> {
    const ns = await Netns.create(`mwc${n}`);
    this.clients.push(ns);
    const a = `mwh${n}`, b = `mwc${n}`;
    await this.hub.exec(["ip", "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns.name]);
    await this.hub.exec(["ip", "addr", "add", `192.168.${n}.1/24`, "dev", a]);
    await this.hub.exec(["ip", "link", "set", a, "up"]);
    await ns.exec(["ip", "addr", "add", `192.168.${n}.2/24`, "dev", b]);
    await ns.exec(["ip", "link", "set", b, "up"]);
    return { ns, hubAddr: `192.168.${n}.1` };
  }

  async writeFile(name: string, content: string): Promise<string> {
    const p = `${this.dir}/${name}`;
    await Deno.writeTextFile(p, content, { mode: 0o600 });
    return p;
  }

  async destroy(): Promise<void> {
    for (const c of this.clients) await c.destroy();
    await this.hub.destroy();
  }
}

/** A running `wgedge mwgp ...` with its stderr collected. */
export interface MwgpProcess {
  child: Deno.ChildProcess;
  log: () => string;
  stop(): Promise<void>;
}

export async function startMwgp(
  ns: Netns,
  args: string[],
  env: Record<string, string> = {},
  denoFlags: string[] = [],
): Promise<MwgpProcess> {
  const child = ns.spawnWgedge(["mwgp", ...args], {
    stderr: "piped",
    env: { WGEDGE_LOG_LEVEL: "debug", ...env },
    denoFlags,
  });
  return await whenStarted(child, "mwgp started", "mwgp", "SIGTERM");
}

/**
 * A spawned process (stderr piped) once its stderr shows `marker`: its log so far and a stop() that sends
 * `signal` and waits for it. Throws with the log if it exits first.
 */
export async function whenStarted(
  child: Deno.ChildProcess,
  marker: string,
  what: string,
  signal: Deno.Signal,
): Promise<MwgpProcess> {
  const err = collect(child.stderr);
  let exited = false;
  child.status.then(() => exited = true);
  await waitFor(() => exited || err.text().includes(marker), `${what} to start`, 600, 50);
  if (exited) throw new Error(`${what} exited early:\n${err.text()}`);
  return {
    child,
    log: err.text,
    async stop() {
      try {
        child.kill(signal);
      } catch { /* gone */ }
      await child.status;
      await err.done;
    },
  };
}
