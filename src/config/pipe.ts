/**
 * The seed-000 one-line tunnel form `PrivateKey|PublicKey|Endpoint|ClientIP` -> WgConfig.
 *
 * It describes a client with one server peer that carries all traffic, so the fixed parts are:
 * - AllowedIPs `0.0.0.0/0, ::/0` (everything goes through the server),
 * - MTU 1420 (wg-quick's default),
 * - PersistentKeepalive 25 s, what the seed system used: such clients sit behind NAT and must keep the
 *   mapping open for the server to reach them (25 s is also wg(8)'s recommended value).
 * ClientIP is the tunnel address; a bare address is /32 (IPv4) or /128 (IPv6), and several may be given
 * comma separated (`10.0.0.2/32,fd00::2/128`). An optional fifth field is the peer's WARP reserved bytes
 * (`...|10.0.0.2|1,2,3` or `...|AQID`, src/config/reserved.ts), as `Reserved =` in a [Peer]. Blank lines and `#` comment lines around the form are allowed,
 * so a file can hold it with a comment; exactly one form per text.
 */
import { DEFAULT_MTU, type IpPrefix, type WgConfig } from "../wireguard/config.ts";
import { decodeKey } from "../crypto/x25519.ts";
import { ProblemCollector } from "./errors.ts";
import { parseHostPort, parsePrefix } from "./ip.ts";
import { badKeyError } from "./keys.ts";
import { parseReserved } from "./reserved.ts";

export const PIPE_KEEPALIVE_SECONDS = 25;
export const PIPE_ALLOWED_IPS: readonly IpPrefix[] = [
  { address: "0.0.0.0", prefix: 0 },
  { address: "::", prefix: 0 },
];
export const PIPE_FORM = "PrivateKey|PublicKey|Endpoint|ClientIP[|Reserved]";

/** True when `text` (comments and blank lines aside) is a single line with `|` separators. */
export function looksLikePipeForm(text: string): boolean {
  const lines = significantLines(text);
  return lines.length === 1 && lines[0].text.includes("|");
}

function significantLines(text: string): { no: number; text: string }[] {
  const out: { no: number; text: string }[] = [];
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n|\r/);
  for (let i = 0; i < lines.length; i++) {
    const t = lines[i].trim();
    if (t !== "" && !t.startsWith("#")) out.push({ no: i + 1, text: t });
  }
  return out;
}

/**
 * Parses the pipe form. `source` names the variable or file. Line numbers are reported only when the text
 * has more than one line (an inline env value is one line and its name says enough).
 */
export function parsePipeForm(text: string, source: string): WgConfig {
  const p = new ProblemCollector();
  const lines = significantLines(text);
  const multiLine = /[\r\n]/.test(text.trim());
  if (lines.length !== 1) {
    p.error({
      source,
      line: lines.length > 1 && multiLine ? lines[1].no : undefined,
      expected: `exactly one line ${PIPE_FORM}`,
    });
    p.throwIfAny();
  }
  const { no, text: form } = lines[0];
  const line = multiLine ? no : undefined;
  const fields = form.split("|").map((f) => f.trim());
  if (fields.length !== 4 && fields.length !== 5) {
    // Not echoed: the line holds a private key.
    p.error({ source, line, expected: `4 or 5 fields ${PIPE_FORM}, got ${fields.length} field(s)` });
    p.throwIfAny();
  }
  const [privText, pubText, endpointText, clientText, reservedText] = fields;
  const key = (t: string, name: string) => {
    try {
      return decodeKey(t, name);
    } catch {
      p.errors.push(
        badKeyError({ source, line, key: `${name} (field ${name === "PrivateKey" ? 1 : 2})` }, t),
      );
      return undefined;
    }
  };
  const privateKey = key(privText, "PrivateKey");
  const publicKey = key(pubText, "PublicKey");
  const endpoint = parseHostPort(endpointText);
  if (!endpoint.ok) {
    p.error({ source, line, key: "Endpoint (field 3)", expected: endpoint.expected, got: endpointText });
  }
  const addresses: IpPrefix[] = [];
  const clientItems = clientText.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (clientItems.length === 0) {
    p.error({
      source,
      line,
      key: "ClientIP (field 4)",
      expected: "the tunnel address, like 10.0.0.2 or 10.0.0.2/32",
    });
  }
  for (const item of clientItems) {
    const prefix = parsePrefix(item);
    if (prefix) addresses.push(prefix);
    else {
      p.error({
        source,
        line,
        key: "ClientIP (field 4)",
        expected: "a tunnel address like 10.0.0.2, 10.0.0.2/32 or fd00::2/128",
        got: item,
      });
    }
  }
  const reserved = reservedText === undefined
    ? { ok: true as const, value: undefined }
    : parseReserved(reservedText);
  if (!reserved.ok) {
    p.error({ source, line, key: "Reserved (field 5)", expected: reserved.expected, got: reservedText });
  }
  p.throwIfAny();
  return {
    source,
    iface: { privateKey: privateKey!, addresses, mtu: DEFAULT_MTU, dns: [] },
    peers: [{
      publicKey: publicKey!,
      allowedIps: PIPE_ALLOWED_IPS.map((a) => ({ ...a })),
      endpoint: endpoint.ok ? endpoint.value : undefined,
      persistentKeepalive: PIPE_KEEPALIVE_SECONDS,
      ...(reserved.ok && reserved.value ? { reserved: reserved.value } : {}),
    }],
  };
}
