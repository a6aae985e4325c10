/**
 * wgedge against wireguard-go (the reference implementation) in a network namespace: handshakes both ways,
 * IPv4 and IPv6 inner traffic, with and without PresharedKey, and wrong keys failing cleanly.
 */
import { assert, assertEquals, assertMatch, assertStringIncludes } from "./helpers/assert.ts";
import { interopTest, Netns, waitFor, wgKeyPair, wgPsk, WireguardGo } from "./helpers/interop.ts";
import { runWgedge, startWgedge, waitForOutput, writeConf } from "./helpers/wgedge_proc.ts";

interface Setup {
  ns: Netns;
  wg: WireguardGo;
  dir: string;
  wgedgeKeys: { privateKey: string; publicKey: string };
  refKeys: { privateKey: string; publicKey: string };
  psk?: string;
}

async function setup(
  opts: { psk?: boolean; refKnowsWrongKey?: boolean; wgedgePort?: number } = {},
): Promise<Setup> {
  const ns = await Netns.create("wgi");
  try {
    const dir = await Deno.makeTempDir({ prefix: "wgedge-interop-" });
    ns.cleanups.push(() => Deno.remove(dir, { recursive: true }));
    const wgedgeKeys = await wgKeyPair(), refKeys = await wgKeyPair();
    const psk = opts.psk ? await wgPsk() : undefined;
    const peerKey = opts.refKnowsWrongKey ? (await wgKeyPair()).publicKey : wgedgeKeys.publicKey;
    const wg = await WireguardGo.start(ns, {
      privateKey: refKeys.privateKey,
      listenPort: 51820,
      addresses: ["10.77.0.1/24", "fd77::1/64"],
      peers: [{
        publicKey: peerKey,
        allowedIps: ["10.77.0.2/32", "fd77::2/128"],
        presharedKey: psk,
        endpoint: opts.wgedgePort ? `127.0.0.1:${opts.wgedgePort}` : undefined,
      }],
    });
    return { ns, wg, dir, wgedgeKeys, refKeys, psk };
  } catch (e) {
    await ns.destroy(); // the caller's finally only sees a finished setup
    throw e;
  }
}

function wgedgeConf(
  s: Setup,
  opts: { listenPort?: number; endpoint?: boolean | string; peerKey?: string } = {},
): string {
  return [
    "[Interface]",
    `PrivateKey = ${s.wgedgeKeys.privateKey}`,
    "Address = 10.77.0.2/32",
    "Address = fd77::2/128  # IPv6 on its own line",
    opts.listenPort ? `ListenPort = ${opts.listenPort}` : "",
    "",
    "[Peer]",
    `PublicKey = ${opts.peerKey ?? s.refKeys.publicKey}`,
    s.psk ? `PresharedKey = ${s.psk}` : "",
    "AllowedIPs = 10.77.0.1/32, fd77::1/128",
    opts.endpoint ? `Endpoint = ${opts.endpoint === true ? "127.0.0.1:51820" : opts.endpoint}` : "",
  ].join("\n");
}

for (const psk of [false, true]) {
  const label = psk ? "with PresharedKey" : "without PresharedKey";

  interopTest(`interop: wgedge initiates to wireguard-go, ping IPv4 and IPv6 (${label})`, async () => {
    const s = await setup({ psk });
    try {
      const conf = await writeConf(s.dir, "wgedge.conf", wgedgeConf(s, { endpoint: true }));
      for (const target of ["10.77.0.1", "fd77::1"]) {
        // -W 20: a reply only counts as lost after 20 s, enough for a loaded machine and even for one
        // handshake retransmission (REKEY_TIMEOUT 5 s).
        const r = await runWgedge(s.ns, ["ping", "-c", conf, "-n", "3", "-i", "0.2", "-W", "20", target]);
        assertEquals(r.code, 0, `wgedge ping ${target} exit code; stderr: ${r.stderr}`);
        assertMatch(r.stdout, new RegExp(`bytes from ${target.replace(/\./g, "\\.")}: icmp_seq=\\d time=`));
        assertStringIncludes(r.stdout, "3 packets transmitted, 3 received");
      }
      const hs = await s.wg.show("latest-handshakes");
      assert(/\s[1-9]\d+\s*$/.test(hs.trim().split("\n")[0]), `wireguard-go saw a handshake: ${hs}`);
    } finally {
      await s.ns.destroy();
    }
  });

  interopTest(
    `interop: wireguard-go initiates, kernel ping reaches wgedge on IPv4 and IPv6 (${label})`,
    async () => {
      const s = await setup({ psk, wgedgePort: 51821 });
      try {
        // No Endpoint on the wgedge side: it cannot initiate, so every handshake here is wireguard-go's.
        const conf = await writeConf(s.dir, "wgedge.conf", wgedgeConf(s, { listenPort: 51821 }));
        const up = startWgedge(s.ns, ["up", "-c", conf]);
        try {
          await waitForOutput(up, "tunnel up");
          // -w (deadline), not -W: after its last request iputils ping waits only max(2 RTT, interval) for
          // outstanding replies unless a deadline is set, so one reply delayed by a loaded machine would be
          // counted as lost.
          const v4 = await s.ns.exec(["ping", "-c", "3", "-i", "0.2", "-w", "30", "10.77.0.2"], {
            check: false,
          });
          assertEquals(v4.code, 0, `kernel ping 10.77.0.2: ${v4.stdout}${v4.stderr}`);
          assertStringIncludes(v4.stdout, "3 received");
          const v6 = await s.ns.exec(["ping", "-6", "-c", "3", "-i", "0.2", "-w", "30", "fd77::2"], {
            check: false,
          });
          assertEquals(v6.code, 0, `kernel ping fd77::2: ${v6.stdout}${v6.stderr}`);
          assertStringIncludes(v6.stdout, "3 received");
          const ep = await s.wg.show("endpoints");
          assertStringIncludes(ep, "127.0.0.1:51821");
        } finally {
          const st = await up.stop("SIGTERM");
          assertEquals(st.code, 0, "up exits 0 on SIGTERM");
          assertStringIncludes(up.stderr(), "shutting down");
        }
      } finally {
        await s.ns.destroy();
      }
    },
    { tools: ["ping"] },
  );
}

interopTest(
  "interop: IPv6 and hostname endpoints ([::1]:51820, localhost:51820) reach wireguard-go",
  async () => {
    const s = await setup();
    try {
      for (const endpoint of ["[::1]:51820", "localhost:51820"]) {
        const conf = await writeConf(s.dir, "wgedge.conf", wgedgeConf(s, { endpoint }));
        const r = await runWgedge(s.ns, [
          "ping",
          "-c",
          conf,
          "-n",
          "2",
          "-i",
          "0.2",
          "-W",
          "20",
          "10.77.0.1",
        ]);
        assertEquals(r.code, 0, `Endpoint ${endpoint}: ${r.stderr}`);
        assertStringIncludes(r.stdout, "2 packets transmitted, 2 received");
        if (endpoint.startsWith("[")) {
          assertStringIncludes(await s.wg.show("endpoints"), "[::1]:", "wireguard-go saw the IPv6 source");
        }
      }
    } finally {
      await s.ns.destroy();
    }
  },
);

interopTest(
  "interop: wgedge with the wrong peer key gets no reply, exits 1 and logs the failed handshake",
  async () => {
    const s = await setup();
    try {
      const wrong = (await wgKeyPair()).publicKey;
      const conf = await writeConf(s.dir, "wgedge.conf", wgedgeConf(s, { endpoint: true, peerKey: wrong }));
      // -W 10: the retry log line comes 5 s (+ jitter) after the initiation; margin for a loaded machine.
      const r = await runWgedge(s.ns, ["ping", "-c", conf, "-n", "1", "-W", "10", "10.77.0.1"]);
      assertEquals(r.code, 1, "exit 1 without replies");
      assertStringIncludes(r.stdout, "1 packets transmitted, 0 received");
      assertStringIncludes(r.stderr, "handshake did not complete after 5 seconds, retrying");
    } finally {
      await s.ns.destroy();
    }
  },
);

interopTest(
  "interop: wireguard-go with the wrong key for wgedge is rejected at mac1, logged, no crash",
  async () => {
    const s = await setup({ refKnowsWrongKey: true, wgedgePort: 51821 });
    try {
      const conf = await writeConf(s.dir, "wgedge.conf", wgedgeConf(s, { listenPort: 51821 }));
      const up = startWgedge(s.ns, ["up", "-c", conf]);
      try {
        await waitForOutput(up, "tunnel up");
        const r = await s.ns.exec(["ping", "-c", "2", "-W", "2", "10.77.0.2"], { check: false });
        assert(r.code !== 0, "no reply");
        await waitForOutput(up, "invalid mac1", "a log line about the rejected handshake");
        // Still alive and still serving: a correct configuration now works against the same process.
        await s.wg.setPeer({
          publicKey: s.wgedgeKeys.publicKey,
          allowedIps: ["10.77.0.2/32"],
          endpoint: "127.0.0.1:51821",
        });
        await waitFor(
          async () =>
            (await s.ns.exec(["ping", "-c", "1", "-W", "2", "10.77.0.2"], { check: false })).code === 0,
          "ping after fixing the key",
          10,
          100,
        );
      } finally {
        const st = await up.stop("SIGTERM");
        assertEquals(st.code, 0);
      }
    } finally {
      await s.ns.destroy();
    }
  },
  { tools: ["ping"] },
);
