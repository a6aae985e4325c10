/**
 * The dashboard's tunnels view, through the admin app's request handler (no socket): one table per tunnel,
 * one row per peer with readable values, everything escaped, and no secret of a real tunnel's config.
 */
import { createAdminApp } from "../src/services/admin/app.ts";
import { ServiceRegistry } from "../src/services/registry.ts";
import { formatBytes, formatHandshakeAge, formatKeepalive } from "../src/services/admin/tunnels_view.ts";
import { openTunnel } from "../src/net/tunnels.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { ManualClock } from "../src/util/clock.ts";
import { seededRandom } from "../src/util/random.ts";
import type { WgConfig } from "../src/wireguard/config.ts";
import { configureLogging } from "../src/util/log.ts";
import { assert, assertEquals, assertStringIncludes } from "./helpers/assert.ts";

configureLogging({ level: "error" });

const WALL_NOW = 1_700_000_000_000;
const clock = new ManualClock(1_000_000, WALL_NOW);
const ago = (s: number) => new Date(WALL_NOW - s * 1000).toISOString();

const PEER_A = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
const PEER_B = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";
const PEER_C = "gN65BkIKy1eCE9pP1wdc8ROUtkHLF2PfAqYdyYBz6EA=";

function twoTunnels() {
  return [
    {
      name: "main",
      publicKey: "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw=",
      listenPort: 51820,
      peers: [
        {
          publicKey: PEER_A,
          endpoint: "192.0.2.7:51820",
          allowedIps: ["10.0.0.2/32", "fd00::2/128"],
          persistentKeepalive: 25,
          keying: "preshared",
          lastHandshake: ago(42),
          rxBytes: 1536,
          txBytes: 5 * 1024 * 1024 + 300 * 1024,
          handshakes: 3,
        },
        {
          publicKey: PEER_B,
          endpoint: null,
          allowedIps: ["10.0.0.3/32"],
          persistentKeepalive: 0,
          keying: "public-key-only",
          lastHandshake: null,
          rxBytes: 0,
          txBytes: 148,
          handshakes: 0,
        },
      ],
    },
    {
      name: "office",
      publicKey: "qRZkp9ZZ9/fdmFPYNEE1xMJX8ZxNHvUHS6M9tbHZ0W4=",
      listenPort: 40000,
      peers: [{
        publicKey: PEER_C,
        endpoint: "[2001:db8::1]:51820",
        allowedIps: ["0.0.0.0/0", "::/0"],
        persistentKeepalive: 10,
        keying: "public-key-only",
        lastHandshake: ago(600),
        rxBytes: 3 * 1024 ** 3,
        txBytes: 1023,
        handshakes: 12,
      }],
    },
  ];
}

async function dashboard(registry: ServiceRegistry): Promise<string> {
  const app = createAdminApp({ registry, version: "test", clock });
  const res = await app.request("/");
  assertEquals(res.status, 200);
  assertStringIncludes(res.headers.get("content-type") ?? "", "text/html");
  return await res.text();
}

/** The <tr> of the row that mentions `needle`, for per-row assertions. */
function rowOf(html: string, needle: string): string {
  const at = html.indexOf(needle);
  assert(at >= 0, `no row mentions ${needle}`);
  const start = html.lastIndexOf("<tr", at);
  const end = html.indexOf("</tr>", at);
  return html.slice(start, end);
}

Deno.test("dashboard: one tunnels table with one readable row per peer, headed in words", async () => {
  const registry = new ServiceRegistry(WALL_NOW - 60_000);
  registry.registerStatus("tunnels", twoTunnels);
  const html = await dashboard(registry);
  assertStringIncludes(html, 'http-equiv="refresh"');
  for (
    const h of ["tunnel", "peer", "endpoint", "allowed ips", "latest handshake", "received", "sent"]
  ) {
    assertStringIncludes(html, `<th>${h}</th>`);
  }
  assertStringIncludes(html, "persistent keepalive");
  assertEquals(html.match(/<table id="tunnels-table"/g)?.length, 1, "one table for every tunnel");
  assertStringIncludes(html, "<b>main</b> <small>2 peers</small>");
  assertStringIncludes(html, "<b>office</b> <small>1 peer</small>");
  assertStringIncludes(html, "UDP port 51820");
  assertStringIncludes(html, "<h2>WireGuard tunnels</h2>");

  const a = rowOf(html, PEER_A);
  for (const want of ["192.0.2.7:51820", "10.0.0.2/32<br>fd00::2/128", "42 s ago", "1.50 KiB", "5.29 MiB"]) {
    assertStringIncludes(a, want);
  }
  assertStringIncludes(a, ">preshared key<");
  assertStringIncludes(a, "every 25 s");
  assert(!a.includes('class="stale"'), "a fresh handshake is not dimmed");

  const b = rowOf(html, PEER_B);
  assertStringIncludes(b, ">never<");
  assertStringIncludes(b, ">none<");
  assertStringIncludes(b, "0 B");
  assertStringIncludes(b, "148 B");
  assertStringIncludes(b, ">no preshared key<");
  assertStringIncludes(b, ">off<");
  assertStringIncludes(b, 'class="stale"');

  const c = rowOf(html, PEER_C);
  for (const want of ["[2001:db8::1]:51820", "0.0.0.0/0<br>::/0", "10 min ago", "3.00 GiB", "1023 B"]) {
    assertStringIncludes(c, want);
  }
  assertStringIncludes(c, 'class="tunnel-start warn"', "a peer we dial without a session is marked");
  assert(html.indexOf("<b>office</b>") < html.indexOf("<b>main</b>"), "the tunnel without a session first");
  assertStringIncludes(html, "1 tunnel without a working session: <b>office</b>");
  assert(!html.includes('"rxBytes"') && !html.includes("allowedIps"), "no JSON blob for the peers");
});

Deno.test("dashboard: tunnel and peer values are HTML-escaped", async () => {
  const registry = new ServiceRegistry(WALL_NOW);
  const evil = "<script>alert(1)</script>";
  registry.registerStatus("tunnels", () => [{
    name: evil,
    publicKey: `"${evil}`,
    listenPort: evil,
    peers: [{
      publicKey: evil,
      endpoint: evil,
      allowedIps: [evil],
      keying: evil,
      lastHandshake: evil,
      rxBytes: evil,
      txBytes: evil,
      persistentKeepalive: evil,
      note: evil,
    }, evil],
    extra: { nested: evil },
  }]);
  const html = await dashboard(registry);
  assert(!html.includes("<script>"), "no raw <script> anywhere on the page");
  assert(!html.includes('"<'), "no attribute broken out of");
  assertStringIncludes(html, "&lt;script&gt;alert(1)&lt;/script&gt;");
  assertStringIncludes(
    html,
    `note: <span class="wrap">&lt;script&gt;`,
    "an unknown peer field is shown, escaped",
  );
});

Deno.test("dashboard: a real tunnel's page shows its keying but no private or preshared key", async () => {
  const rng = seededRandom(7);
  const own = generatePrivateKey(rng), peer = generatePrivateKey(rng);
  const psk = rng(new Uint8Array(32));
  const cfg: WgConfig = {
    source: "test",
    iface: { privateKey: own, addresses: [{ address: "10.66.0.1", prefix: 32 }], mtu: 1420, dns: [] },
    peers: [{
      publicKey: publicKey(peer),
      presharedKey: psk,
      allowedIps: [{ address: "10.66.0.2", prefix: 32 }],
      endpoint: { host: "127.0.0.1", port: 9 },
      persistentKeepalive: 0,
    }],
  };
  const tunnel = await openTunnel(cfg, { name: "real" });
  try {
    const registry = new ServiceRegistry(WALL_NOW);
    // The shape `serve` registers for its tunnels (src/cli/serve.ts).
    registry.registerStatus("tunnels", () => {
      const st = tunnel.device.status();
      return [{ name: tunnel.name, publicKey: st.publicKey, listenPort: st.listenPort, peers: st.peers }];
    });
    const html = await dashboard(registry);
    for (const secret of [encodeKey(own), encodeKey(peer), encodeKey(psk)]) {
      assert(!html.includes(secret), "a secret key reached the page");
      assert(!html.includes(secret.slice(0, 20)), "part of a secret key reached the page");
    }
    const row = rowOf(html, encodeKey(publicKey(peer)));
    assertStringIncludes(row, ">preshared key<");
    assertStringIncludes(row, ">never<");
    assertStringIncludes(row, "10.66.0.2/32");
    assertStringIncludes(row, "127.0.0.1:9");
    assertStringIncludes(html, encodeKey(publicKey(own)));
  } finally {
    tunnel.close();
  }
});

Deno.test("dashboard formatters: bytes, handshake age, keepalive", () => {
  assertEquals(formatBytes(0), "0 B");
  assertEquals(formatBytes(1023), "1023 B");
  assertEquals(formatBytes(1024), "1.00 KiB");
  assertEquals(formatBytes(1536), "1.50 KiB");
  assertEquals(formatBytes(10 * 1024 + 512), "10.5 KiB");
  assertEquals(formatBytes(200 * 1024 * 1024), "200 MiB");
  assertEquals(formatBytes(5 * 1024 ** 4), "5.00 TiB");
  assertEquals(formatHandshakeAge(null, WALL_NOW), "never");
  assertEquals(formatHandshakeAge(ago(1.9), WALL_NOW), "1 s ago");
  assertEquals(formatHandshakeAge(ago(-5), WALL_NOW), "0 s ago");
  assertEquals(formatHandshakeAge("not a time", WALL_NOW), "not a time");
  assertEquals(formatKeepalive(0), "off");
  assertEquals(formatKeepalive(25), "every 25 s");
});
