/**
 * Soak run (not part of the test suite): `wgedge serve` with TCP and UDP relays (host targets, a port range,
 * and targets behind two WireGuard tunnels to wireguard-go peers), rps with a separate `wgedge rpc`, and an mwgp
 * server carrying a wireguard-go client to a wireguard-go server, all under continuous churn for --minutes:
 *
 *   - connections opened and closed and new UDP flows on every relay and on the rps public port
 *     (scripts/soak/load.ts), pings through mwgp every 30 s;
 *   - SIGHUP every minute (the env file alternates RELAY_6's target, so a reload really restarts a relay);
 *   - the rpc process restarted every 3 minutes; tunnel B's wireguard-go peer restarted every 5 minutes.
 *
 * Every 10 s it samples the serve process: RSS (VmRSS), open fds (/proc/PID/fd), threads (/proc/PID/task),
 * and from /metrics: wgedge_unexpected_errors_total, relay connect failures, UDP datagrams dropped, failed
 * reloads, open relay connections/flows; plus the churn's successes and failures. Deno exposes no count of
 * its own resources or timers to another process, so fds and threads stand for them (every socket, timer-
 * backed or not, of a leaked connection or flow holds an fd). Writes samples.csv, the logs and summary.md to
 * --out (default /tmp/wgedge-soak-TIME): RSS slope per hour after --warmup minutes (least squares), fd and
 * thread min/max after warm-up, error counters, and the warn/error lines of the serve log.
 *
 *   sudo nice deno run -A scripts/soak.ts [--minutes 30] [--warmup 5] [--out DIR]
 *       [--hup-s 60] [--rpc-restart-s 180] [--peer-restart-s 300]
 *
 * Needs root, ip, wireguard-go, wg, curl, ping. Everything it creates (namespaces "sk<pid>-e/p1/p2", their
 * processes, UAPI sockets, the temp directory unless --out is given) is removed at the end, on error and on
 * Ctrl-C.
 */
import {
  cleanupOnSignals,
  denoRun,
  execedInto,
  logText,
  memKiB,
  numberFlag,
  type Proc,
  Resources,
  run,
  sleep,
  stopProc,
  waitUntil,
} from "./bench/lib/proc.ts";
import { genKeys, PID36, startHub, upWithAddress } from "./bench/lib/hub.ts";
import { checkout, logSummary, machineLine } from "./bench/lib/report.ts";
import { interopUnavailable } from "../tests/helpers/interop.ts";

const MAIN_TS = new URL("../main.ts", import.meta.url).pathname;
const LOAD_TS = new URL("./soak/load.ts", import.meta.url).pathname;
const REPO = new URL("..", import.meta.url).pathname;

const flags = new Map<string, string>();
for (let i = 0; i < Deno.args.length; i += 2) flags.set(Deno.args[i].replace(/^--/, ""), Deno.args[i + 1]);
const MINUTES = numberFlag("minutes", flags.get("minutes"), 30, 1, 24 * 60);
const WARMUP_MIN = numberFlag("warmup", flags.get("warmup"), Math.min(5, MINUTES / 3), 0, MINUTES - 0.5);
const SAMPLE_MS = 10_000;
const HUP_EVERY_MS = numberFlag("hup-s", flags.get("hup-s"), 60, 5, 3600) * 1000;
const RPC_RESTART_MS = numberFlag("rpc-restart-s", flags.get("rpc-restart-s"), 180, 10, 86400) * 1000;
const PEER_RESTART_MS = numberFlag("peer-restart-s", flags.get("peer-restart-s"), 300, 10, 86400) * 1000;
const MWGP_PING_MS = 30_000;

const why = await interopUnavailable(["curl", "ping"]);
if (why) {
  console.error(`soak: cannot run here: ${why}`);
  Deno.exit(2);
}

const res = new Resources();
const signals = cleanupOnSignals(() => res.cleanup());
const out = flags.get("out") ?? `/tmp/wgedge-soak-${new Date().toISOString().replace(/[:.]/g, "-")}`;
await Deno.mkdir(out, { recursive: true });
const dir = await Deno.makeTempDir({ prefix: "wgedge-soak-" });
res.dir = dir;

const NS = { e: `sk${PID36}-e`, p1: `sk${PID36}-p1`, p2: `sk${PID36}-p2` };
const IFC = { p1: `sk${PID36}a`, p2: `sk${PID36}b`, srv: `sk${PID36}s`, cli: `sk${PID36}c` };
const ADMIN = "127.0.0.1:39080";
const PORT = {
  echoTcp: 30101,
  echoTcp2: 30103,
  echoUdp: 30102,
  echoRange: 32000,
  rpsPublic: 45000,
  tunnelTcp: 7000,
  tunnelUdp: 7001,
};

function log(msg: string): void {
  console.log(`${new Date().toISOString().slice(11, 19)} ${msg}`);
}

async function veth(n: number, ns: string): Promise<void> {
  const a = `sk${PID36}e${n}`, b = `sk${PID36}p${n}`;
  await run(["ip", "-n", NS.e, "link", "add", a, "type", "veth", "peer", "name", b, "netns", ns]);
  await run(["ip", "-n", NS.e, "addr", "add", `10.201.${n}.1/24`, "dev", a]);
  await run(["ip", "-n", NS.e, "link", "set", a, "up"]);
  await run(["ip", "-n", ns, "addr", "add", `10.201.${n}.2/24`, "dev", b]);
  await run(["ip", "-n", ns, "link", "set", b, "up"]);
}

type Keys = Awaited<ReturnType<typeof genKeys>>[number];

function wgConf(self: Keys, address: string, listenPort: number | undefined, peer: {
  key: Keys;
  allowed: string;
  endpoint?: string;
  keepalive?: number;
}): string {
  return `[Interface]\nPrivateKey = ${self.privateKey}\n${address ? `Address = ${address}\n` : ""}` +
    (listenPort ? `ListenPort = ${listenPort}\n` : "") +
    `\n[Peer]\nPublicKey = ${peer.key.publicKey}\nAllowedIPs = ${peer.allowed}\n` +
    (peer.endpoint ? `Endpoint = ${peer.endpoint}\n` : "") +
    (peer.keepalive ? `PersistentKeepalive = ${peer.keepalive}\n` : "");
}

/** wg setconf takes no Address: strip it (the address is set with ip). */
const setconfText = (conf: string) => conf.replace(/^Address = .*\n/m, "");

/** A wireguard-go interface in ns from a wg-quick-ish conf, with its address; returns the process. */
async function wireguardGo(ns: string, ifc: string, conf: string, cidr: string): Promise<Proc> {
  const p = await startHub(res, ns, ifc, `${dir}/${ifc}.conf`, setconfText(conf));
  await upWithAddress(ns, ifc, cidr);
  return p;
}

function relayEnv(hup: number): string {
  const relay6Target = hup % 2 === 0 ? PORT.echoTcp : PORT.echoTcp2;
  return [
    `WGEDGE_ADMIN_LISTEN=${ADMIN}`,
    `WGEDGE_LOG_FORMAT=json`,
    `ENABLE_LOGGING=n`,
    `WG_UAPI_DIR=${dir}`, // UAPI socket names are global: keep this run's out of /var/run/wireguard
    `WG_CONFIG=${dir}/main.conf`,
    `WG_TUNNEL_B=${dir}/b.conf`,
    `RPS_CONFIG=${dir}/rps.conf`,
    `RPS_BIND=127.0.0.1`,
    `RPS_ALLOW_PORTS=${PORT.rpsPublic}`,
    `MWGP_SERVER_CONFIG=${dir}/mwgp.json5`,
    `MWGP_CACHE_FILE=${dir}/mwgp-cache.json`,
    `RELAY_1="30001;${PORT.echoTcp};127.0.0.1;TCP;bind=127.0.0.1"`,
    `RELAY_2="30002;${PORT.echoUdp};127.0.0.1;UDP;bind=127.0.0.1;udp_timeout=30"`,
    `RELAY_3="30003;${PORT.tunnelTcp};10.77.1.2;TCP;bind=127.0.0.1;via=wg:main"`,
    `RELAY_4="30004;${PORT.tunnelUdp};10.77.2.2;UDP;bind=127.0.0.1;via=wg:b;udp_timeout=30"`,
    `RELAY_5="31000-31009;${PORT.echoRange}-${PORT.echoRange + 9};127.0.0.1;TCP;bind=127.0.0.1"`,
    `RELAY_6="30006;${relay6Target};127.0.0.1;TCP;bind=127.0.0.1"`,
    "",
  ].join("\n");
}

/** Sum of every sample of a metric family (optionally only samples whose labels contain `labelText`). */
function metricSum(text: string, name: string, labelText = ""): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name) || (line[name.length] !== " " && line[name.length] !== "{")) continue;
    if (labelText && !line.includes(labelText)) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

interface Sample {
  t: number;
  rssKiB: number;
  fds: number;
  threads: number;
  unexpected: number;
  connectFailures: number;
  udpDropped: number;
  reloadsFailed: number;
  reloadsOk: number;
  relayActive: number;
  churnOk: number;
  churnFail: number;
  mwgpOk: number;
  mwgpFail: number;
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  const mx = xs.reduce((a, b) => a + b, 0) / n, my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0, den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i] - mx) * (ys[i] - my);
    den += (xs[i] - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

let failed = false;
try {
  for (const ns of Object.values(NS)) await res.addNetns(ns);
  await veth(1, NS.p1);
  await veth(2, NS.p2);
  const [kE1, kP1, kE2, kP2, kRS, kRC, kSrv, kCli] = await genKeys(8);

  // wgedge's side (files in dir, mode 0600).
  const write = (name: string, text: string) => Deno.writeTextFile(`${dir}/${name}`, text, { mode: 0o600 });
  await write(
    "main.conf",
    wgConf(kE1, "10.77.1.1/24", 51820, {
      key: kP1,
      allowed: "10.77.1.2/32",
      endpoint: "10.201.1.2:51820",
      keepalive: 25,
    }),
  );
  await write(
    "b.conf",
    wgConf(kE2, "10.77.2.1/24", 51821, {
      key: kP2,
      allowed: "10.77.2.2/32",
      endpoint: "10.201.2.2:51821",
      keepalive: 25,
    }),
  );
  await write("rps.conf", wgConf(kRS, "10.66.0.1/24", 51830, { key: kRC, allowed: "10.66.0.2/32" }));
  await write(
    "rpc.conf",
    wgConf(kRC, "10.66.0.2/32", undefined, {
      key: kRS,
      allowed: "10.66.0.0/24",
      endpoint: "127.0.0.1:51830",
      keepalive: 25,
    }),
  );
  await write(
    "mwgp.json5",
    `{ listen: "10.201.1.1:51900", servers: [ { privkey: "${kSrv.privateKey}", address: "10.201.2.2",\n` +
      `  peers: [ { pubkey: "${kCli.publicKey}", forward_to: ":51901" } ] } ] }\n`,
  );
  let hups = 0;
  await write("wgedge.env", relayEnv(hups));

  // The peers: tunnel main's and tunnel B's wireguard-go, the mwgp client (p1) and the WireGuard server behind mwgp (p2).
  const p2Conf = wgConf(kP2, "", 51821, { key: kE2, allowed: "10.77.2.1/32", endpoint: "10.201.2.1:51821" });
  await wireguardGo(
    NS.p1,
    IFC.p1,
    wgConf(kP1, "", 51820, { key: kE1, allowed: "10.77.1.1/32", endpoint: "10.201.1.1:51820" }),
    "10.77.1.2/24",
  );
  let peerB = await wireguardGo(NS.p2, IFC.p2, p2Conf, "10.77.2.2/24");
  await wireguardGo(
    NS.p2,
    IFC.srv,
    wgConf(kSrv, "", 51901, { key: kCli, allowed: "10.88.0.2/32" }),
    "10.88.0.1/24",
  );
  await wireguardGo(
    NS.p1,
    IFC.cli,
    wgConf(kCli, "", undefined, {
      key: kSrv,
      allowed: "10.88.0.1/32",
      endpoint: "10.201.1.1:51900",
      keepalive: 10,
    }),
    "10.88.0.2/24",
  );

  // Echo targets: on the edge's loopback, and behind each tunnel.
  res.spawnIn(
    NS.e,
    "echo e",
    denoRun(
      LOAD_TS,
      "echo",
      "--tcp",
      [PORT.echoTcp, PORT.echoTcp2, ...Array.from({ length: 10 }, (_, i) => PORT.echoRange + i)].join(","),
      "--udp",
      String(PORT.echoUdp),
    ),
  );
  res.spawnIn(NS.p1, "echo p1", denoRun(LOAD_TS, "echo", "--tcp", String(PORT.tunnelTcp)));
  res.spawnIn(NS.p2, "echo p2", denoRun(LOAD_TS, "echo", "--udp", String(PORT.tunnelUdp)));

  const serve = res.spawnIn(
    NS.e,
    "wgedge serve",
    denoRun(MAIN_TS, "serve", "--env-file", `${dir}/wgedge.env`),
  );
  await execedInto(serve, "deno", "wgedge serve");
  const metrics = async () =>
    (await run(["ip", "netns", "exec", NS.e, "curl", "-sS", "--max-time", "5", `http://${ADMIN}/metrics`], {
      check: false,
      timeoutMs: 15_000,
    })).stdout;
  await waitUntil(
    async () => serve.exited() || (await metrics()).includes("wgedge_relay_up"),
    "wgedge serve's /metrics",
    120_000,
    500,
  );
  if (serve.exited()) throw new Error(`wgedge serve exited (${serve.how}):\n${logText(serve).slice(-3000)}`);

  const rpcCmd = denoRun(
    MAIN_TS,
    "rpc",
    "-c",
    `${dir}/rpc.conf`,
    "-r",
    `127.0.0.1:${PORT.echoTcp}-${PORT.rpsPublic}`,
  );
  const rpcEnv = { WGEDGE_LOG_FORMAT: "json", WG_UAPI_DIR: dir };
  let rpc = res.spawnIn(NS.e, "wgedge rpc", rpcCmd, rpcEnv);
  const rpcLogs: string[] = [];
  // Churn starts once the rps public port is mapped (later failures on it are the rpc restarts').
  await waitUntil(
    () => rpc.exited() || logText(rpc).includes("mapping registered"),
    "rpc's mapping registered",
    120_000,
    200,
  );
  if (rpc.exited()) throw new Error(`wgedge rpc exited (${rpc.how})`);

  const churn = res.spawnIn(
    NS.e,
    "churn",
    denoRun(
      LOAD_TS,
      "churn",
      "--tcp",
      `relay-tcp=30001,tunnel-tcp=30003,range-tcp=31000-31009,reloaded-tcp=30006,rps-tcp=${PORT.rpsPublic}`,
      "--udp",
      "relay-udp=30002,tunnel-udp=30004",
    ),
  );
  log(`started: serve pid ${serve.pid}; out ${out}; ${MINUTES} min, warm-up ${WARMUP_MIN} min`);

  // The commit measured: taken now, since the checkout may move while the run goes on.
  const { head, dirty } = await checkout(REPO);
  const samples: Sample[] = [];
  const churnTotals = {
    ok: new Map<string, number>(),
    fail: new Map<string, number>(),
    lastError: new Map<string, string>(),
  };
  let churnLinesSeen = 0;
  let mwgpOk = 0, mwgpFail = 0;
  const events: string[] = [];
  const t0 = Date.now();
  const end = t0 + MINUTES * 60_000;
  let nextSample = t0,
    nextHup = t0 + HUP_EVERY_MS,
    nextRpc = t0 + RPC_RESTART_MS,
    nextPeer = t0 + PEER_RESTART_MS,
    nextPing = t0 + 5000;
  const csv = await Deno.open(`${out}/samples.csv`, { create: true, write: true, truncate: true });
  const enc = new TextEncoder();
  await csv.write(
    enc.encode(
      "t_s,rss_kib,fds,threads,unexpected_errors,relay_connect_failures,udp_dropped,reloads_ok,reloads_failed,relay_active,churn_ok,churn_fail,mwgp_ping_ok,mwgp_ping_fail\n",
    ),
  );

  while (Date.now() < end && !signals.interrupted()) {
    if (serve.exited()) throw new Error(`wgedge serve exited (${serve.how})`);
    const now = Date.now();
    if (now >= nextHup) {
      nextHup += HUP_EVERY_MS;
      await write("wgedge.env", relayEnv(++hups));
      Deno.kill(serve.pid, "SIGHUP");
    }
    if (now >= nextRpc) {
      nextRpc += RPC_RESTART_MS;
      await stopProc(rpc, 10_000);
      rpcLogs.push(logText(rpc));
      rpc = res.spawnIn(NS.e, "wgedge rpc", rpcCmd, rpcEnv);
      events.push(`${Math.round((now - t0) / 1000)} s: rpc restarted`);
    }
    if (now >= nextPeer) {
      nextPeer += PEER_RESTART_MS;
      await stopProc(peerB, 10_000);
      await Deno.remove(`/var/run/wireguard/${IFC.p2}.sock`).catch(() => {});
      peerB = await wireguardGo(NS.p2, IFC.p2, p2Conf, "10.77.2.2/24");
      events.push(`${Math.round((now - t0) / 1000)} s: tunnel B's wireguard-go restarted`);
    }
    if (now >= nextPing) {
      nextPing += MWGP_PING_MS;
      const r = await run([
        "ip",
        "netns",
        "exec",
        NS.p1,
        "ping",
        "-c",
        "3",
        "-i",
        "0.5",
        "-W",
        "2",
        "10.88.0.1",
      ], { check: false, timeoutMs: 20_000 });
      if (r.code === 0) mwgpOk++;
      else mwgpFail++;
    }
    if (now >= nextSample) {
      nextSample += SAMPLE_MS;
      const lines = churn.stdout.text().split("\n").filter((l) => l.startsWith("{"));
      for (const l of lines.slice(churnLinesSeen)) {
        const j = JSON.parse(l);
        for (const [k, v] of Object.entries(j.ok ?? {})) {
          churnTotals.ok.set(k, (churnTotals.ok.get(k) ?? 0) + (v as number));
        }
        for (const [k, v] of Object.entries(j.fail ?? {})) {
          churnTotals.fail.set(k, (churnTotals.fail.get(k) ?? 0) + (v as number));
        }
        for (const [k, v] of Object.entries(j.lastError ?? {})) churnTotals.lastError.set(k, v as string);
      }
      churnLinesSeen = lines.length;
      const m = await metrics();
      let fds = NaN, threads = NaN, rss = NaN;
      try {
        rss = memKiB(serve.pid).rss;
        fds = [...Deno.readDirSync(`/proc/${serve.pid}/fd`)].length;
        threads = [...Deno.readDirSync(`/proc/${serve.pid}/task`)].length;
      } catch { /* exited: caught at the loop's top */ }
      const s: Sample = {
        t: Math.round((now - t0) / 1000),
        rssKiB: rss,
        fds,
        threads,
        unexpected: metricSum(m, "wgedge_unexpected_errors_total"),
        connectFailures: metricSum(m, "wgedge_relay_connect_failures_total"),
        udpDropped: metricSum(m, "wgedge_relay_udp_dropped_total"),
        reloadsOk: metricSum(m, "wgedge_reload_total", 'result="success"'),
        reloadsFailed: metricSum(m, "wgedge_reload_total") -
          metricSum(m, "wgedge_reload_total", 'result="success"'),
        relayActive: metricSum(m, "wgedge_relay_connections_active"),
        churnOk: [...churnTotals.ok.values()].reduce((a, b) => a + b, 0),
        churnFail: [...churnTotals.fail.values()].reduce((a, b) => a + b, 0),
        mwgpOk,
        mwgpFail,
      };
      samples.push(s);
      await csv.write(
        enc.encode(
          `${
            [
              s.t,
              s.rssKiB,
              s.fds,
              s.threads,
              s.unexpected,
              s.connectFailures,
              s.udpDropped,
              s.reloadsOk,
              s.reloadsFailed,
              s.relayActive,
              s.churnOk,
              s.churnFail,
              s.mwgpOk,
              s.mwgpFail,
            ].join(",")
          }\n`,
        ),
      );
      if (samples.length % 6 === 1) {
        log(
          `t=${s.t}s rss=${
            (s.rssKiB / 1024).toFixed(1)
          }MiB fds=${s.fds} threads=${s.threads} unexpected=${s.unexpected} churn ok/fail=${s.churnOk}/${s.churnFail} mwgp=${mwgpOk}/${mwgpFail} reloads=${s.reloadsOk}/${s.reloadsFailed}`,
        );
      }
    }
    await sleep(Math.max(50, Math.min(nextSample, nextHup, nextRpc, nextPeer, nextPing) - Date.now()));
  }
  csv.close();

  // Summary.
  const after = samples.filter((s) => s.t >= WARMUP_MIN * 60);
  const hours = after.map((s) => s.t / 3600);
  const rssSlopeMiBh = slope(hours, after.map((s) => s.rssKiB / 1024));
  const fdsSlope = slope(hours, after.map((s) => s.fds));
  const last = samples[samples.length - 1];
  const serveLog = logText(serve);
  rpcLogs.push(logText(rpc));
  await Deno.writeTextFile(`${out}/serve.log`, serveLog);
  await Deno.writeTextFile(`${out}/rpc.log`, rpcLogs.join("\n--- restart ---\n"));
  const every = Math.max(1, Math.round(180_000 / SAMPLE_MS));
  const table = samples.filter((_, i) => i % every === 0 || i === samples.length - 1).map((s) =>
    `| ${(s.t / 60).toFixed(1)} | ${
      (s.rssKiB / 1024).toFixed(1)
    } | ${s.fds} | ${s.threads} | ${s.relayActive} | ${s.churnOk} | ${s.churnFail} | ${s.unexpected} | ${s.reloadsOk}/${s.reloadsFailed} |`
  );
  const summary = [
    `Soak: ${MINUTES} min (${samples.length} samples every ${SAMPLE_MS / 1000} s), commit ${head}${
      dirty.length ? " (dirty)" : ""
    }`,
    `Machine: ${await machineLine()}; load average at the end ${
      Deno.readTextFileSync("/proc/loadavg").split(" ").slice(0, 3).join(" ")
    }`,
    "",
    "| min | RSS MiB | fds | threads | relay conns+flows | churn ok | churn fail | unexpected | reloads ok/failed |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...table,
    "",
    `After ${WARMUP_MIN} min warm-up: RSS slope ${
      rssSlopeMiBh.toFixed(2)
    } MiB/h (least squares over ${after.length} samples), ` +
    `RSS ${Math.min(...after.map((s) => s.rssKiB / 1024)).toFixed(1)}-${
      Math.max(...after.map((s) => s.rssKiB / 1024)).toFixed(1)
    } MiB; ` +
    `fds min ${Math.min(...after.map((s) => s.fds))} max ${Math.max(...after.map((s) => s.fds))} (slope ${
      fdsSlope.toFixed(1)
    }/h); ` +
    `threads ${Math.min(...after.map((s) => s.threads))}-${Math.max(...after.map((s) => s.threads))}.`,
    `Counters at the end: wgedge_unexpected_errors_total ${last.unexpected}; relay connect failures ${last.connectFailures}; ` +
    `UDP datagrams dropped ${last.udpDropped}; reloads ok ${last.reloadsOk}, failed ${last.reloadsFailed}; mwgp pings ok ${mwgpOk}, failed ${mwgpFail}.`,
    `Churn per target (ok / failed, last error): ` +
    [...new Set([...churnTotals.ok.keys(), ...churnTotals.fail.keys()])].sort().map((k) =>
      `${k} ${churnTotals.ok.get(k) ?? 0}/${churnTotals.fail.get(k) ?? 0}${
        churnTotals.lastError.has(k) ? ` ("${churnTotals.lastError.get(k)}")` : ""
      }`
    ).join("; "),
    `Events: ${hups} SIGHUPs; ${events.length} restarts (${events.join("; ")}).`,
    `serve log warn/error lines: ${
      logSummary(serveLog, (j) =>
        `${j.level} ${j.msg ?? j.message}${j.error ? `: ${String(j.error).slice(0, 80)}` : ""}`, 120)
    }`,
    `rpc log warn/error lines: ${
      logSummary(rpcLogs.join("\n"), (j) => `${j.level} ${j.msg ?? j.message}`, 120)
    }`,
  ].join("\n");
  await Deno.writeTextFile(`${out}/summary.md`, summary + "\n");
  console.log("\n" + summary);
} catch (e) {
  failed = true;
  console.error(`soak failed: ${(e as Error).stack ?? e}`);
  for (const p of res.procs) {
    if (p.exited() || p.name.startsWith("wgedge")) {
      console.error(`--- ${p.name} (${p.how}) ---\n${logText(p).slice(-2000)}`);
    }
  }
} finally {
  signals.remove();
  await res.cleanup();
}
Deno.exit(failed ? 1 : 0);
