/**
 * The rps REST API (routes of the public wg-rp project), served inside the tunnel on port 80.
 *
 * Identity is the tunnel source address of the HTTP connection, handed in as the Hono binding `remoteAddr`
 * (WireGuard authenticated it through AllowedIPs); a `client_ip` in a body is only checked against it.
 * Every response is JSON `{success, message, ...}`, including 400/404/413/500 produced by the framework.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { ConnInfo } from "../../net/http1.ts";
import type { RpProtocol, RpResult, RpServer } from "./server.ts";
import { canonicalIp, isIpv4Mapped } from "./ip.ts";

export type RpApiBindings = ConnInfo;
export type RpApiEnv = { Bindings: RpApiBindings };

export interface RpApiDeps {
  server: Pick<RpServer, "register" | "unregister" | "listFor" | "heartbeat" | "startupTime">;
  /** Largest accepted request body in bytes (default 16 KiB). */
  maxBodyBytes?: number;
}

class BadRequest extends Error {}

function intField(body: Record<string, unknown>, name: string, required: boolean): number | undefined {
  const v = body[name];
  if (v === undefined || v === null) {
    if (required) throw new BadRequest(`${name} is required`);
    return undefined;
  }
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 65535) {
    throw new BadRequest(`${name} must be an integer 1..65535`);
  }
  return v;
}

function protocolOf(v: unknown): RpProtocol {
  if (v === undefined || v === null || v === "") return "tcp";
  if (typeof v === "string" && (v.toLowerCase() === "tcp" || v.toLowerCase() === "udp")) {
    return v.toLowerCase() as RpProtocol;
  }
  throw new BadRequest(`protocol must be "tcp" or "udp"`);
}

/** Parses the body as a JSON object; an empty body is {} when allowed. */
async function jsonObject(req: Request, allowEmpty: boolean): Promise<Record<string, unknown>> {
  const text = await req.text();
  if (text.trim() === "") {
    if (allowEmpty) return {};
    throw new BadRequest("request body must be a JSON object");
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new BadRequest("invalid JSON body");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new BadRequest("request body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

/** A body's client_ip, when present, must be the caller's own tunnel address. */
function checkClaimedIp(body: Record<string, unknown>, caller: string): string | null {
  const claimed = body.client_ip;
  if (claimed === undefined || claimed === null || claimed === "") return null;
  if (typeof claimed !== "string") throw new BadRequest("client_ip must be a string");
  const canon = canonicalIp(claimed);
  if (canon === null) throw new BadRequest("client_ip is not an IP address");
  if (canon !== caller) return `client_ip ${canon} is not the caller's tunnel address ${caller}`;
  return null;
}

export function createRpApi(deps: RpApiDeps): Hono<RpApiEnv> {
  const { server } = deps;
  const app = new Hono<RpApiEnv>();
  const reply = (r: RpResult) =>
    new Response(JSON.stringify(r.body), {
      status: r.status,
      headers: { "content-type": "application/json" },
    });
  const fail = (status: ContentfulStatusCode, message: string) =>
    reply({ status, body: { success: false, message } });
  const callerOf = (env: RpApiBindings | undefined): string | null => {
    const host = env?.remoteAddr?.hostname;
    return host ? canonicalIp(host) : null;
  };

  app.use(
    "*",
    bodyLimit({
      maxSize: deps.maxBodyBytes ?? 16 * 1024,
      onError: () => fail(413, `request body larger than ${deps.maxBodyBytes ?? 16 * 1024} bytes`),
    }),
  );

  // Requests without a caller identity (a misconfigured embedding) are refused rather than guessed.
  app.use("/api/*", async (c, next) => {
    const caller = callerOf(c.env);
    if (caller === null) return fail(403, "caller identity unavailable");
    // A mapped source is not the IPv4 client it names (ip.ts): refused, so no peer can act as another.
    if (isIpv4Mapped(caller)) {
      return fail(
        403,
        `IPv4-mapped source address ${caller} refused: an IPv4 client calls the API over IPv4`,
      );
    }
    await next();
  });

  app.post("/api/v1/port-mappings", async (c) => {
    const caller = callerOf(c.env)!;
    const body = await jsonObject(c.req.raw, false);
    const mismatch = checkClaimedIp(body, caller);
    if (mismatch) return fail(403, mismatch);
    const remotePort = intField(body, "remote_port", true)!;
    const clientPort = intField(body, "client_port", true)!;
    const protocol = protocolOf(body.protocol);
    const localAddr = body.local_addr ?? "";
    if (typeof localAddr !== "string" || localAddr.length > 255) {
      throw new BadRequest("local_addr must be a string of at most 255 characters");
    }
    return reply(server.register(caller, { remotePort, clientPort, protocol, localAddr }));
  });

  app.delete("/api/v1/port-mappings", async (c) => {
    const caller = callerOf(c.env)!;
    const portText = c.req.query("port");
    if (portText === undefined || !/^\d{1,5}$/.test(portText)) {
      return fail(400, "query parameter port=1..65535 is required");
    }
    const protocol = protocolOf(c.req.query("protocol"));
    return reply(await server.unregister(caller, Number(portText), protocol));
  });

  app.get("/api/v1/port-mappings", (c) => {
    const caller = callerOf(c.env)!;
    const mappings = server.listFor(caller);
    return c.json({ success: true, message: `${mappings.length} mapping(s)`, client_ip: caller, mappings });
  });

  app.post("/api/v1/heartbeat", async (c) => {
    const caller = callerOf(c.env)!;
    const body = await jsonObject(c.req.raw, true);
    const mismatch = checkClaimedIp(body, caller);
    if (mismatch) return fail(403, mismatch);
    return reply(server.heartbeat(caller));
  });

  app.notFound((c) => fail(404, `no route ${c.req.method} ${c.req.path}`));
  app.onError((err) => {
    if (err instanceof BadRequest) return fail(400, err.message);
    return fail(500, "internal error");
  });
  return app;
}
