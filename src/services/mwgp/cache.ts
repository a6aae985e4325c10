/**
 * The forwarding-table cache file, so a restart keeps sessions without re-handshakes. Format of the public
 * mwgp project: {"client_map": [{coidx, cpidx, soidx, spidx, cpk, spk, cdst, sdst, csvl, ssvl, obfe}]}.
 * Only completed handshakes are saved. Writes are atomic (tmp file + rename, mode 0600); a missing file is an
 * empty table and a corrupt one a warning.
 */
import { fromBase64, toBase64 } from "../../util/bytes.ts";
import type { SourceValidation } from "../../config/mwgp.ts";
import { addrKey, ForwardingEntry, type ForwardingTable, parseAddrKey } from "./table.ts";

export interface CacheRecord {
  coidx: number;
  cpidx: number;
  soidx: number;
  spidx: number;
  cpk: string | null;
  spk: string | null;
  cdst: string;
  sdst: string;
  csvl: number;
  ssvl: number;
  obfe: boolean;
}

export interface CacheFile {
  client_map: CacheRecord[];
}

/** Path precedence: config cache_file_path > --cache-file / MWGP_CACHE_FILE > <user cache dir>/mwgp/... */
export function resolveCachePath(opts: {
  configPath?: string;
  flagOrEnvPath?: string;
  listen: string;
  env?: Record<string, string | undefined>;
}): string {
  if (opts.configPath) return opts.configPath;
  if (opts.flagOrEnvPath) return opts.flagOrEnvPath;
  const env = opts.env ?? Deno.env.toObject();
  const base = env.XDG_CACHE_HOME || (env.HOME ? `${env.HOME}/.cache` : "/tmp");
  const safe = opts.listen.replace(/[^A-Za-z0-9._\-\[\]:]/g, "_");
  return `${base}/mwgp/wgit-cache-${safe}.json`;
}

const U32 = (v: unknown): v is number =>
  typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff;

function keyOrNull(v: unknown): Uint8Array | null | undefined {
  if (v === null || v === undefined || v === "") return null;
  if (typeof v !== "string") return undefined;
  try {
    const k = fromBase64(v);
    return k.length === 32 ? k : undefined;
  } catch {
    return undefined;
  }
}

export function serializeTable(table: ForwardingTable): CacheFile {
  const client_map: CacheRecord[] = [];
  for (const e of table.entries()) {
    if (!e.completed) continue;
    client_map.push({
      coidx: e.clientOrigin,
      cpidx: e.clientProxy,
      soidx: e.serverOrigin,
      spidx: e.serverProxy,
      cpk: e.clientPublicKey ? toBase64(e.clientPublicKey) : null,
      spk: e.serverPublicKey ? toBase64(e.serverPublicKey) : null,
      cdst: addrKey(e.client),
      sdst: addrKey(e.server),
      csvl: e.csvl,
      ssvl: e.ssvl,
      obfe: e.obfuscated,
    });
  }
  return { client_map };
}

/**
 * Loads records into the table (now = their last-active time). Returns how many were loaded and problems
 * with individual records (skipped); throws only when the file as a whole is not a cache file.
 */
export function loadRecords(
  table: ForwardingTable,
  data: unknown,
  nowMs: number,
): { loaded: number; skipped: string[] } {
  if (typeof data !== "object" || data === null || !Array.isArray((data as CacheFile).client_map)) {
    if (typeof data === "object" && data !== null && (data as CacheFile).client_map === null) {
      return { loaded: 0, skipped: [] };
    }
    throw new Error('expected {"client_map": [...]}');
  }
  const skipped: string[] = [];
  let loaded = 0;
  for (const [i, r] of (data as CacheFile).client_map.entries()) {
    const rec = r as Partial<CacheRecord>;
    const cdst = typeof rec.cdst === "string" ? parseAddrKey(rec.cdst) : null;
    const sdst = typeof rec.sdst === "string" ? parseAddrKey(rec.sdst) : null;
    const cpk = keyOrNull(rec.cpk), spk = keyOrNull(rec.spk);
    if (
      !U32(rec.coidx) || !U32(rec.cpidx) || !U32(rec.soidx) || !U32(rec.spidx) || rec.cpidx === 0 ||
      rec.spidx === 0 ||
      !cdst || !sdst || cpk === undefined || spk === undefined
    ) {
      skipped.push(`client_map[${i}]: malformed record`);
      continue;
    }
    if (table.byClientProxy.has(rec.cpidx) || table.byServerProxy.has(rec.spidx)) {
      skipped.push(`client_map[${i}]: index already in use`);
      continue;
    }
    if (table.size >= table.maxEntries) {
      skipped.push(`client_map[${i}]: table full`);
      continue;
    }
    const lvl = (v: unknown) => (U32(v) && v <= 3 ? v : 0) as SourceValidation;
    const e = new ForwardingEntry(
      rec.coidx,
      rec.cpidx,
      cdst,
      sdst,
      cpk,
      spk,
      nowMs,
      lvl(rec.csvl),
      lvl(rec.ssvl),
    );
    e.serverOrigin = rec.soidx;
    e.serverProxy = rec.spidx;
    e.obfuscated = rec.obfe === true;
    table.insert(e);
    loaded++;
  }
  return { loaded, skipped };
}

/** Writes the file atomically: a sibling temp file with mode 0600, then rename over the old one. */
export async function writeCacheFile(path: string, content: CacheFile): Promise<void> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : ".";
  if (dir) await Deno.mkdir(dir, { recursive: true, mode: 0o700 }).catch(() => {});
  const tmp = `${path}.tmp-${Deno.pid}`;
  await Deno.writeTextFile(tmp, JSON.stringify(content, null, 2) + "\n", { mode: 0o600 });
  await Deno.chmod(tmp, 0o600).catch(() => {});
  await Deno.rename(tmp, path);
}

/** Reads the file: null when missing; throws (with a reason) when unreadable or not JSON. */
export async function readCacheFile(path: string): Promise<unknown | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  return JSON.parse(text);
}
