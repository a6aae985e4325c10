/**
 * `GET /api/v1/ntrip` answers whichever NTRIP services run: a caster alone (its mounts), or relay stations
 * with the caster beside them (one answer with both). Through the admin app, without a socket.
 */
import { assertEquals } from "./helpers/assert.ts";
import { createSupervisor } from "../src/cli/server.ts";
import { createAdminApp } from "../src/services/admin/app.ts";

const MOUNTS = JSON.stringify([{ mount: "BEND", source_password: "source-secret" }]);
const STATIONS = JSON.stringify([{
  id: "A",
  enable: false,
  src_host: "127.0.0.1",
  src_port: 2101,
  src_mount: "SRC",
  dst_host: "127.0.0.1",
  dst_port: 2102,
  dst_mount: "A",
  dst_pass: "dst-secret",
}]);

async function ntripApi(flags: Record<string, string>, only: string[]) {
  const sup = createSupervisor({ flags, env: {}, admin: false, only });
  await sup.start();
  try {
    const res = await createAdminApp({ registry: sup.registry }).request("/api/v1/ntrip");
    return { status: res.status, body: await res.json() };
  } finally {
    await sup.stop();
  }
}

Deno.test("/api/v1/ntrip: a caster alone answers with its mounts", async () => {
  const r = await ntripApi(
    { "ntrip-caster-listen": "127.0.0.1:0", "ntrip-caster-mounts": MOUNTS },
    ["ntrip_caster"],
  );
  assertEquals(r.status, 200);
  assertEquals(r.body.stations, []);
  assertEquals(r.body.caster.mounts.map((m: { mount: string }) => m.mount), ["BEND"]);
  assertEquals(JSON.stringify(r.body).includes("source-secret"), false);
});

Deno.test("/api/v1/ntrip: relay stations and the caster in one process answer together", async () => {
  const r = await ntripApi({
    "ntrip-caster-listen": "127.0.0.1:0",
    "ntrip-caster-mounts": MOUNTS,
    "ntrip-stations": STATIONS,
  }, ["ntrip_caster", "ntrip"]);
  assertEquals(r.status, 200);
  assertEquals(r.body.stations.map((s: { id: string }) => s.id), ["A"]);
  assertEquals(r.body.caster.mounts.map((m: { mount: string }) => m.mount), ["BEND"]);
});
