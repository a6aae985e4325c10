/**
 * Watches one file and calls `onChange` once things have settled (editors and `cp` write a file in several
 * steps, and many replace it by renaming a temporary file over it). The directory is watched, not the file,
 * so a rename over the path is seen; events for other files in the directory are ignored.
 */
import type { Clock, TimerHandle } from "../util/clock.ts";
import { logger } from "../util/log.ts";

const log = logger("watch");

/** Quiet time after the last event before onChange runs. */
export const SETTLE_MS = 500;

export interface FileWatch {
  close(): void;
}

function absolute(path: string): string {
  if (path.startsWith("/")) return path;
  return `${Deno.cwd()}/${path}`.replace(/\/\.\//g, "/");
}

export function watchFile(path: string, onChange: () => void, clock: Clock): FileWatch {
  const file = absolute(path);
  const dir = file.slice(0, file.lastIndexOf("/")) || "/";
  let watcher: Deno.FsWatcher;
  try {
    watcher = Deno.watchFs(dir, { recursive: false });
  } catch (e) {
    log.warn("cannot watch; changes apply on SIGHUP only", { file, error: (e as Error).message });
    return { close() {} };
  }
  let timer: TimerHandle | undefined;
  (async () => {
    for await (const event of watcher) {
      if (!event.paths.some((p) => p === file)) continue;
      clock.clearTimer(timer);
      timer = clock.setTimer(() => {
        timer = undefined;
        onChange();
      }, SETTLE_MS);
    }
  })().catch(() => {/* closed */});
  return {
    close() {
      clock.clearTimer(timer);
      try {
        watcher.close();
      } catch { /* already closed */ }
    },
  };
}
