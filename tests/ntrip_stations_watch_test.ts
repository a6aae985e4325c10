/**
 * The stations file is watched (src/services/file_watch.ts): saving it reloads like SIGHUP, including when an
 * editor replaces it by renaming a temporary file over it. Disabled stations, so nothing is dialled.
 */
import { assertEquals } from "./helpers/assert.ts";
import { waitFor } from "./helpers/interop.ts";
import { createSupervisor } from "../src/cli/server.ts";

function stations(ids: string[]): string {
  return JSON.stringify(
    ids.map((id) => ({
      id,
      enable: false,
      src_host: "127.0.0.1",
      src_port: 2101,
      src_mount: "SRC",
      dst_host: "127.0.0.1",
      dst_port: 2102,
      dst_mount: id,
      dst_pass: "secret-password",
    })),
    null,
    2,
  );
}

Deno.test("ntrip: saving the watched stations file reloads; a file renamed over it too", async () => {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-watch-" });
  const file = `${dir}/stations.json`;
  await Deno.writeTextFile(file, stations(["A"]), { mode: 0o600 });
  const sup = createSupervisor({ flags: { "ntrip-stations": file }, env: {}, admin: false, only: ["ntrip"] });
  const ids = () =>
    ((sup.registry.status().ntrip_stations ?? []) as { id: string }[]).map((s) => s.id).sort().join(",");
  try {
    await sup.start();
    assertEquals(ids(), "A");
    await Deno.writeTextFile(file, stations(["A", "B"]), { mode: 0o600 });
    await waitFor(() => ids() === "A,B", "the saved file to be applied");
    assertEquals(sup.lastReload?.result, "success");

    const tmp = `${dir}/.stations.json.tmp`;
    await Deno.writeTextFile(tmp, stations(["C"]), { mode: 0o600 });
    await Deno.rename(tmp, file);
    await waitFor(() => ids() === "C", "the file renamed over the old one to be applied");
  } finally {
    await sup.stop();
    await Deno.remove(dir, { recursive: true });
  }
});
