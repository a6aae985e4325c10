/**
 * config/wgedge.service: `systemd-analyze verify` (Debian systemd) reports nothing for it, nor for the
 * CAP_NET_BIND_SERVICE drop-in its comment tells operators to add. verify insists that ExecStart's binary
 * exists, so it runs on a copy whose only change is that path (asserted: every other line is the shipped
 * one). verify exits 0 on unknown keys, so any line it prints about our unit fails the test; a control
 * proves it does print for a misspelt key. The sandboxing the README promises is asserted line by line.
 */
import { capabilityTest, onPath, run } from "./helpers/interop.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";
import { loadConfig } from "../src/config/mod.ts";

const UNIT = new URL("../config/wgedge.service", import.meta.url).pathname;
const SHIPPED_BINARY = "/usr/local/bin/wgedge";
const MISSING = onPath("systemd-analyze") ? null : "systemd-analyze not installed (Debian package systemd)";

/** The unit's `Key=value` lines (comments and sections left out). */
function settings(text: string): string[] {
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "" && !/^[#;\[]/.test(l));
}

/** The drop-in the unit's comment block describes: the commented lines after `#   [Service]`. */
function dropInFromComment(text: string): string {
  const lines = text.split("\n");
  const at = lines.findIndex((l) => l.trim() === "#   [Service]");
  assert(at >= 0, "the unit's comment shows the CAP_NET_BIND_SERVICE drop-in");
  const body = [];
  for (let i = at + 1; i < lines.length && /^# {3}\S/.test(lines[i]); i++) body.push(lines[i].slice(4));
  return `[Service]\n${body.join("\n")}\n`;
}

/** Copies the unit (ExecStart pointed at a stub binary) and `dropIn` into a fresh directory; verify's output. */
async function verify(unitText: string, dropIn?: string): Promise<string[]> {
  const dir = await Deno.makeTempDir({ prefix: "wgedge-unit-" });
  try {
    const stub = `${dir}/wgedge`;
    await Deno.writeTextFile(stub, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const copy = unitText.replaceAll(`ExecStart=${SHIPPED_BINARY} `, `ExecStart=${stub} `);
    const changed = copy.split("\n").filter((l, i) => l !== unitText.split("\n")[i]);
    assertEquals(
      changed,
      [`ExecStart=${stub} serve --env-file /etc/wgedge/wgedge.env`],
      "only ExecStart differs",
    );
    await Deno.writeTextFile(`${dir}/wgedge.service`, copy);
    if (dropIn !== undefined) {
      await Deno.mkdir(`${dir}/wgedge.service.d`);
      await Deno.writeTextFile(`${dir}/wgedge.service.d/cap.conf`, dropIn);
    }
    const r = await run(["systemd-analyze", "verify", `${dir}/wgedge.service`], { check: false });
    const lines = (r.stdout + r.stderr).split("\n").filter((l) => l.trim() !== "");
    // verify may also comment on units of this machine that ours pulls in; only ours must be silent.
    const ours = lines.filter((l) => l.includes("wgedge") || l.includes(dir));
    assert(r.code === 0 || ours.length > 0, `verify failed (exit ${r.code}) without saying why: ${lines}`);
    return r.code === 0 ? ours : [...ours, `exit ${r.code}`];
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

capabilityTest({
  name: "systemd unit: systemd-analyze verify has nothing to say about it, nor about the capability drop-in",
  async fn() {
    const text = await Deno.readTextFile(UNIT);
    assertEquals(await verify(text), []);
    assertEquals(await verify(text, dropInFromComment(text)), []);
    // Control: the same check sees a misspelt key (verify exits 0 for it, so the output is what counts).
    const bad = await verify(text.replace("PrivateTmp=yes", "PrivateTmpp=yes"));
    assert(bad.some((l) => l.includes("Unknown key") && l.includes("PrivateTmpp")), `control: ${bad}`);
  },
}, MISSING);

Deno.test("systemd unit: serve with the env file, SIGHUP reload, restart on failure, sandboxed, no capability", async () => {
  const text = await Deno.readTextFile(UNIT);
  const s = settings(text);
  for (
    const want of [
      `ExecStart=${SHIPPED_BINARY} serve --env-file /etc/wgedge/wgedge.env`,
      "ExecReload=/bin/kill -HUP $MAINPID",
      "Restart=on-failure",
      "NoNewPrivileges=yes",
      "ProtectSystem=strict",
      "ProtectHome=yes",
      "PrivateTmp=yes",
      "CapabilityBoundingSet=",
      "AmbientCapabilities=",
      "StateDirectory=wgedge",
      "CacheDirectory=wgedge",
      "Environment=XDG_CACHE_HOME=/var/cache/wgedge",
      "RuntimeDirectory=wireguard",
      "RuntimeDirectoryPreserve=yes",
    ]
  ) assert(s.includes(want), `unit lacks ${want}`);
  assert(!s.some((l) => l.includes("CAP_NET_BIND_SERVICE")), "no capability unless a drop-in adds it");
  assert(!s.some((l) => l.startsWith("MemoryDenyWriteExecute")), "V8 needs writable+executable memory");
  assertStringIncludes(dropInFromComment(text), "AmbientCapabilities=CAP_NET_BIND_SERVICE");
});

Deno.test("config: a listen port < 1024 warns naming the setting and the capability drop-in; none otherwise", async () => {
  const { warnings } = await loadConfig({
    env: {
      WGEDGE_ADMIN_LISTEN: "127.0.0.1:81",
      RELAY_1: "443;8443;127.0.0.1;TCP",
      RELAY_2: "1000-1029;11000-11029;127.0.0.1;UDP",
      RELAY_3: "50000;80;127.0.0.1;TCP",
    },
    flags: {},
  });
  const low = warnings.filter((w) => w.includes("CAP_NET_BIND_SERVICE"));
  assertEquals(low.map((w) => w.slice(0, w.indexOf(" (<"))), [
    "WGEDGE_ADMIN_LISTEN: listens on port 81",
    "RELAY_1: listens on port 443",
    "RELAY_2: listens on port 1000",
  ]);
  assertStringIncludes(low[0], "AmbientCapabilities=CAP_NET_BIND_SERVICE");
  assertStringIncludes(low[0], "config/wgedge.service");
  const high = await loadConfig({ env: { RELAY_1: "1024;80;127.0.0.1;TCP" }, flags: {} });
  assertEquals(high.warnings.filter((w) => w.includes("CAP_NET_BIND_SERVICE")), []);
});
