/**
 * Guards of the admin API against a web page in the operator's browser (the API has no CORS, but a browser
 * still sends a page's requests):
 *
 * - DNS rebinding: a page on evil.example re-points its name at 127.0.0.1 and reads the tokenless loopback
 *   API as same-origin. Without a token only loopback Host values (localhost, 127.0.0.1, [::1], any port)
 *   and the configured listen name are answered; others get 421 with the reason.
 * - Cross-site requests: a form or a "simple" fetch can POST/DELETE without a preflight (and a browser adds
 *   Basic credentials it has cached), but cannot set a JSON content type or a custom header. State-changing
 *   methods need `Content-Type: application/json` or `X-Wgedge: 1`, else 403 with the reason.
 */

/** Host values a tokenless admin API answers, besides the listen name. */
const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

const STATE_CHANGING = new Set(["POST", "PUT", "PATCH", "DELETE"]);

/** The header a script or curl adds to a state-changing request (any non-empty value). */
export const ADMIN_REQUEST_HEADER = "X-Wgedge";

/** The host part of a Host header value (`[v6]:port`, `name:port`, `name`), lower-cased. */
export function hostOnly(host: string): string {
  const h = host.trim().toLowerCase();
  if (h.startsWith("[")) {
    const end = h.indexOf("]");
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(":");
  return colon < 0 ? h : h.slice(0, colon);
}

/** The listen hostname as a Host value would carry it (IPv6 in brackets); wildcards name no host. */
function listenHostValue(listen: string | undefined): string | undefined {
  if (!listen || listen === "0.0.0.0" || listen === "::" || listen === "[::]") return undefined;
  const h = listen.toLowerCase();
  return h.includes(":") && !h.startsWith("[") ? `[${h}]` : h;
}

/** Why a tokenless admin API refuses this Host, or null when it is one of its own names. */
export function hostRefusal(host: string | undefined, listenHost: string | undefined): string | null {
  const h = hostOnly(host ?? "");
  if (LOOPBACK_HOSTS.has(h) || (h !== "" && h === listenHostValue(listenHost))) return null;
  // The listen name once: a listen on 127.0.0.1 adds nothing to the loopback names.
  const own = [...new Set([...LOOPBACK_HOSTS, listenHostValue(listenHost)])].filter(Boolean).join(", ");
  return `Host "${host ?? ""}" is not a name of this admin API: without WGEDGE_ADMIN_TOKEN only ${own} ` +
    `(any port) are answered, so a web page cannot reach it through DNS rebinding`;
}

/** Why a request may not change state, or null when it is not state-changing or says it is deliberate. */
export function stateChangeRefusal(
  method: string,
  contentType: string | undefined,
  marker: string | undefined,
) {
  if (!STATE_CHANGING.has(method.toUpperCase())) return null;
  const mediaType = (contentType ?? "").split(";", 1)[0].trim().toLowerCase();
  if (mediaType === "application/json" || (marker ?? "").trim() !== "") return null;
  return `${method.toUpperCase()} needs Content-Type: application/json or the header ${ADMIN_REQUEST_HEADER}: 1 ` +
    `(a web page cannot send either without the API's consent, so it cannot change anything here)`;
}
