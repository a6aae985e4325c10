/**
 * The caster under `serve`'s supervisor, as `wgedge ntrip caster` runs it (the two flags, only
 * "ntrip_caster"): a reload that rewrites the mounts file keeps the sessions of unchanged mounts, drops a
 * removed mount's, adds new mounts, and moves the listener when its address changed.
 */
import { assert, assertEquals } from "./helpers/assert.ts";
import { freePort } from "./helpers/ports.ts";
import { waitFor } from "./helpers/interop.ts";
import { basic, NtripPeer } from "./helpers/ntrip_peer.ts";
import { createSupervisor } from "../src/cli/server.ts";
import type { CasterStatus } from "../src/services/ntrip/caster.ts";

const F9T = Deno.readFileSync(new URL("./fixtures/rtcm3/f9t.rtcm3", import.meta.url));

Deno.test("caster reload: unchanged mounts keep their sessions, a removed one drops its own, listen moves", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-caster-reload-" });
  const mountsFile = `${dir}/mounts.json`;
  const writeMounts = (mounts: unknown[]) =>
    Deno.writeTextFile(mountsFile, JSON.stringify(mounts), { mode: 0o600 });
  const dst = { mount: "DST", source_password: "srcpw", users: ["rover:roverpw"] };
  const open = { mount: "OPEN", source_password: "openpw" };
  await writeMounts([dst, open]);
  const port1 = freePort(), port2 = freePort();
  const flags: Record<string, string> = {
    "ntrip-caster-listen": `127.0.0.1:${port1}`,
    "ntrip-caster-mounts": mountsFile,
  };
  const sup = createSupervisor({ flags, env: {}, only: ["ntrip_caster"], admin: false });
  const peers: NtripPeer[] = [];
  const status = () => sup.registry.status().ntrip_caster as CasterStatus;
  const mount = (name: string) => status().mounts.find((m) => m.mount === name);
  try {
    await sup.start();
    assertEquals(sup.serviceNames, ["ntrip_caster"]);
    const dstSrc = await NtripPeer.open(port1, "SOURCE srcpw DST\r\n\r\n");
    const openSrc = await NtripPeer.open(port1, "SOURCE openpw OPEN\r\n\r\n");
    peers.push(dstSrc, openSrc);
    await dstSrc.waitText("ICY 200 OK");
    await openSrc.waitText("ICY 200 OK");
    const rover = await NtripPeer.open(port1, `GET /DST HTTP/1.0\r\n${basic("rover", "roverpw")}\r\n`);
    peers.push(rover);
    await waitFor(() => mount("DST")?.clients.length === 1, "the DST client");

    await writeMounts([dst, { mount: "NEW", source_password: "newpw" }]);
    flags["ntrip-caster-listen"] = `127.0.0.1:${port2}`;
    const outcome = await sup.reload();
    assertEquals(outcome.result, "success", JSON.stringify(outcome));

    await openSrc.waitEnd("the removed mount's source closed");
    assertEquals(status().mounts.map((m) => m.mount), ["DST", "NEW"]);
    assertEquals(status().listen, `127.0.0.1:${port2}`);
    await dstSrc.write(F9T);
    await rover.waitSize(12 + F9T.length, "DST data after the reload, on the old session");
    assertEquals(rover.split().body, F9T);
    assert(!rover.ended && !dstSrc.ended);

    const newSrc = await NtripPeer.open(port2, "SOURCE newpw NEW\r\n\r\n");
    peers.push(newSrc);
    await newSrc.waitText("ICY 200 OK");
    let refused = false;
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port: port1 })).close();
    } catch {
      refused = true;
    }
    assert(refused, "the old address no longer listens");
  } finally {
    peers.forEach((p) => p.close());
    await sup.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
