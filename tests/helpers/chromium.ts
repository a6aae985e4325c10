/**
 * Headless Chromium driven over the DevTools protocol, for tests that check what a page looks like when a
 * real browser renders it. One process per call (temporary profile, `--remote-debugging-port=0`: the port
 * is read from the DevToolsActivePort file it writes), one page target, every command bounded by a timeout,
 * and close() kills the process and removes the profile.
 *
 * Declare such tests with capabilityTest(def, chromiumUnavailable()) (tests/helpers/interop.ts): ignored with
 * the reason when Chromium is missing, a failure in CI (WGEDGE_REQUIRE_INTEROP=1).
 */
import { waitFor, within } from "./wait.ts";

const CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"];
const COMMAND_TIMEOUT_MS = 30_000;
/** A screenshot renders and encodes the whole page: on a loaded CI machine (2 cores) that can take a while. */
const SCREENSHOT_TIMEOUT_MS = 90_000;
const START_TIMEOUT_MS = 30_000;

/** The browser binary: WGEDGE_CHROMIUM when set (and present), else the first of the usual paths. */
export const CHROMIUM: string | undefined =
  (Deno.env.get("WGEDGE_CHROMIUM") ? [Deno.env.get("WGEDGE_CHROMIUM")!] : CANDIDATES)
    .find((p) => {
      try {
        return Deno.statSync(p).isFile;
      } catch {
        return false;
      }
    });

/** null when Chromium is here, else why not. */
export function chromiumUnavailable(): string | null {
  return CHROMIUM ? null : "chromium not installed (apt-get install chromium)";
}

export interface Browser {
  /** Sends a DevTools command to the page and returns its result (throws on a protocol error). */
  send(method: string, params?: Record<string, unknown>): Promise<Record<string, unknown>>;
  /** Evaluates an expression in the page and returns its value (JSON-serialisable). */
  evaluate<T>(expression: string): Promise<T>;
  /** Navigates to url and waits (bounded) until the page has loaded and holds the element with readyId. */
  open(url: string, readyId: string): Promise<void>;
  /** Saves a PNG of the viewport, or of the whole page with fullPage. */
  screenshot(path: string, fullPage?: boolean): Promise<void>;
  close(): Promise<void>;
}

export async function startChromium(width: number, height: number): Promise<Browser> {
  if (!CHROMIUM) throw new Error("Chromium not installed (apt-get install chromium), and CI requires it");
  const profile = await Deno.makeTempDir({ prefix: "wgedge-chromium-" });
  const child = new Deno.Command(CHROMIUM, {
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-dev-shm-usage",
      "--no-first-run",
      "--no-default-browser-check",
      "--hide-scrollbars",
      `--user-data-dir=${profile}`,
      "--remote-debugging-port=0",
      `--window-size=${width},${height}`,
      "about:blank",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let ws: WebSocket | undefined;
  // A test that ends without reaching close() (an uncaught error, Deno exiting) must not leave a browser.
  const onUnload = () => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  };
  globalThis.addEventListener("unload", onUnload);
  const kill = async () => {
    globalThis.removeEventListener("unload", onUnload);
    try {
      ws?.close();
    } catch { /* closed */ }
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    await Deno.remove(profile, { recursive: true }).catch(() => {});
  };
  try {
    // Chromium writes the port it bound to its profile directory.
    const deadline = Date.now() + START_TIMEOUT_MS;
    let port = 0;
    while (!port) {
      if (Date.now() > deadline) throw new Error("Chromium did not write DevToolsActivePort");
      try {
        port = Number((await Deno.readTextFile(`${profile}/DevToolsActivePort`)).split("\n")[0]);
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const targets = await within(
      fetch(`http://127.0.0.1:${port}/json/list`).then((r) => r.json()),
      "DevTools target list",
      COMMAND_TIMEOUT_MS,
    ) as { type: string; webSocketDebuggerUrl: string }[];
    const page = targets.find((t) => t.type === "page");
    if (!page) throw new Error("Chromium has no page target");
    const socket = new WebSocket(page.webSocketDebuggerUrl);
    ws = socket;
    await within(
      new Promise<void>((resolve, reject) => {
        socket.onopen = () => resolve();
        socket.onerror = () => reject(new Error("DevTools WebSocket failed"));
      }),
      "DevTools WebSocket open",
      COMMAND_TIMEOUT_MS,
    );
    let nextId = 0;
    const pending = new Map<number, { resolve(v: Record<string, unknown>): void; reject(e: Error): void }>();
    socket.onmessage = (ev) => {
      const msg = JSON.parse(String(ev.data));
      const p = msg.id !== undefined ? pending.get(msg.id) : undefined;
      if (!p) return; // events: not used
      pending.delete(msg.id);
      if (msg.error) p.reject(new Error(`DevTools: ${msg.error.message}`));
      else p.resolve(msg.result ?? {});
    };
    socket.onclose = () => {
      for (const p of pending.values()) p.reject(new Error("DevTools WebSocket closed"));
      pending.clear();
    };
    const send = (method: string, params: Record<string, unknown> = {}, timeoutMs = COMMAND_TIMEOUT_MS) => {
      const id = ++nextId;
      const reply = new Promise<Record<string, unknown>>((resolve, reject) =>
        pending.set(id, { resolve, reject })
      );
      socket.send(JSON.stringify({ id, method, params }));
      return within(reply, method, timeoutMs);
    };
    await send("Emulation.setDeviceMetricsOverride", { width, height, deviceScaleFactor: 1, mobile: false });
    const browser: Browser = {
      send,
      async evaluate<T>(expression: string): Promise<T> {
        const r = await send("Runtime.evaluate", { expression, returnByValue: true, awaitPromise: true });
        const ex = r.exceptionDetails as { text?: string } | undefined;
        if (ex) throw new Error(`page script failed: ${ex.text ?? JSON.stringify(ex)}`);
        return (r.result as { value: T }).value;
      },
      async open(url: string, readyId: string): Promise<void> {
        await send("Page.navigate", { url });
        await waitFor(
          () =>
            browser.evaluate<boolean>(
              `document.readyState === "complete" && !!document.getElementById(${JSON.stringify(readyId)})`,
            ).catch(() => false),
          { what: `${url} loaded in Chromium (element #${readyId})`, intervalMs: 100 },
        );
      },
      async screenshot(path: string, fullPage = false): Promise<void> {
        const params: Record<string, unknown> = { format: "png" };
        if (fullPage) {
          const m = await send("Page.getLayoutMetrics");
          const size = m.cssContentSize as { width: number; height: number };
          params.captureBeyondViewport = true;
          params.clip = { x: 0, y: 0, width, height: Math.ceil(size.height), scale: 1 };
        }
        const shot = await send("Page.captureScreenshot", params, SCREENSHOT_TIMEOUT_MS);
        const bin = atob(shot.data as string);
        await Deno.writeFile(path, Uint8Array.from(bin, (c) => c.charCodeAt(0)));
      },
      close: kill,
    };
    return browser;
  } catch (e) {
    await kill();
    throw e;
  }
}
