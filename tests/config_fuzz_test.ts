/**
 * Random and mutated config texts at every config parser: the only exceptions allowed are ConfigError and
 * ConfigErrors, every error names its source and expectation, and the private key in the seed texts never
 * appears whole in a message. Deterministic (seeded) so a failure reproduces.
 */
import { assert } from "./helpers/assert.ts";
import { ConfigError, ConfigErrors } from "../src/config/errors.ts";
import { parseWgQuick } from "../src/config/wgquick.ts";
import { parsePipeForm } from "../src/config/pipe.ts";
import { parseWgText } from "../src/config/source.ts";
import { parseEnvFile } from "../src/config/envfile.ts";
import { loadConfig } from "../src/config/mod.ts";
import { parseHostPort, parseIp, parsePrefix } from "../src/config/ip.ts";
import { encodeKey, generatePrivateKey, publicKey } from "../src/crypto/x25519.ts";
import { seededRandom } from "../src/util/random.ts";

const ITERATIONS = 20_000;
const LOADER_ITERATIONS = 1_000;

const fill = seededRandom(0xc0ffee);
const PRIV = encodeKey(generatePrivateKey(fill));
const PEER = encodeKey(publicKey(generatePrivateKey(fill)));
const PSK = encodeKey(fill(new Uint8Array(32)));

const INI = `[Interface]
PrivateKey = ${PRIV}
Address = 10.0.0.2/24, fd00::2/64
ListenPort = 51820
MTU = 1420
DNS = 1.1.1.1, example.com
Obfs = hunter2hunter2
PostUp = echo up
[Peer]
PublicKey = ${PEER}
PresharedKey = ${PSK}
AllowedIPs = 0.0.0.0/0, ::/0
Endpoint = [2001:db8::1]:51820
PersistentKeepalive = 25
`;
const PIPE = `${PRIV}|${PEER}|vpn.example.com:51820|10.8.0.2/32`;
const ENV =
  `# env\nexport WG_MTU=1400\nWGEDGE_LOG_LEVEL='debug'\nWG_CONFIG="${PIPE}"\nWGEDGE_ADMIN_LISTEN=127.0.0.1:8081 # c\n`;

const TOKENS = [
  "[",
  "]",
  "=",
  "#",
  ";",
  "|",
  ",",
  ":",
  "::",
  "/",
  ".",
  "\n",
  "\r\n",
  " ",
  "\t",
  "%",
  "'",
  '"',
  "\\",
  "0",
  "65535",
  "65536",
  "-1",
  "255",
  "256",
  "ffff",
  "[Interface]",
  "[Peer]",
  "[peer]",
  "Address",
  "AllowedIPs",
  "Endpoint",
  "MTU",
  "off",
  "10.0.0.300",
  "fe80::1%eth0",
  "::ffff:1.2.3.4",
  "\uFEFF",
  "\u0000",
  "é",
  "😀",
  "export ",
  "PrivateKey",
];

function rand(n: number): number {
  const b = fill(new Uint8Array(4));
  return ((b[0] | (b[1] << 8) | (b[2] << 16)) >>> 0) % n;
}

function mutate(text: string): string {
  let t = text;
  const ops = 1 + rand(6);
  for (let k = 0; k < ops; k++) {
    const at = rand(t.length + 1);
    switch (rand(8)) {
      case 0: // delete a run
        t = t.slice(0, at) + t.slice(at + 1 + rand(8));
        break;
      case 1: // insert a token
        t = t.slice(0, at) + TOKENS[rand(TOKENS.length)] + t.slice(at);
        break;
      case 2: // replace a char with a random code unit
        t = t.slice(0, at) + String.fromCharCode(rand(0x300)) + t.slice(at + 1);
        break;
      case 3: { // duplicate a line
        const lines = t.split("\n");
        const i = rand(lines.length);
        lines.splice(i, 0, lines[i]);
        t = lines.join("\n");
        break;
      }
      case 4: { // swap two lines
        const lines = t.split("\n");
        const i = rand(lines.length), j = rand(lines.length);
        [lines[i], lines[j]] = [lines[j], lines[i]];
        t = lines.join("\n");
        break;
      }
      case 5: // truncate
        t = t.slice(0, at);
        break;
      case 6: // flip case of a run
        t = t.slice(0, at) + t.slice(at, at + 6).toUpperCase() + t.slice(at + 6);
        break;
      default: // random garbage
        t = t.slice(0, at) + Array.from({ length: rand(12) }, () => TOKENS[rand(TOKENS.length)]).join("") +
          t.slice(at);
    }
  }
  return t;
}

function randomText(): string {
  return Array.from({ length: rand(30) }, () => TOKENS[rand(TOKENS.length)]).join("");
}

function checkError(e: unknown, what: string, input: string): void {
  if (!(e instanceof ConfigError || e instanceof ConfigErrors)) {
    throw new Error(`${what} threw ${e instanceof Error ? e.stack : e} for input ${JSON.stringify(input)}`);
  }
  for (const err of ConfigErrors.flatten(e)) {
    assert(err.source.length > 0 && err.expected.length > 0, `${what}: incomplete error ${err.message}`);
    assert(
      err.message.startsWith(err.source),
      `${what}: message does not start with its source: ${err.message}`,
    );
  }
  assert(
    !e.message.includes(PRIV) && !e.message.includes(PSK),
    `${what}: key leaked for ${JSON.stringify(input)}`,
  );
}

Deno.test(`config fuzz: ${ITERATIONS} mutated/random texts only ever raise config errors`, () => {
  const parsers: [string, (t: string, warnings: string[]) => unknown][] = [
    ["parseWgQuick", (t, w) => parseWgQuick(t, "fuzz.conf", w)],
    ["parsePipeForm", (t) => parsePipeForm(t, "FUZZ")],
    ["parseWgText", (t, w) => parseWgText(t, "fuzz", w)],
    ["parseEnvFile", (t, w) => parseEnvFile(t, "fuzz.env", w)],
  ];
  const seeds = [INI, PIPE, ENV];
  let accepted = 0, rejected = 0;
  for (let i = 0; i < ITERATIONS; i++) {
    const input = i % 10 === 9 ? randomText() : mutate(seeds[i % seeds.length]);
    const [name, parse] = parsers[i % parsers.length];
    const warnings: string[] = [];
    try {
      parse(input, warnings);
      accepted++;
    } catch (e) {
      checkError(e, name, input);
      rejected++;
    }
    for (const w of warnings) assert(!w.includes(PRIV) && !w.includes(PSK), `${name}: key in warning ${w}`);
    // Address helpers never throw at all.
    const piece = input.slice(rand(input.length + 1)).split(/[\s,=]/)[0];
    parseIp(piece);
    parsePrefix(piece, { maskHostBits: true });
    parseHostPort(piece, { allowEmptyHost: true, allowPortZero: true });
  }
  // Both outcomes happen, so the mutations neither destroy everything nor leave everything valid.
  assert(
    accepted > ITERATIONS / 20 && rejected > ITERATIONS / 20,
    `accepted ${accepted}, rejected ${rejected}`,
  );
});

Deno.test(`config fuzz: ${LOADER_ITERATIONS} mutated environments through loadConfig`, async () => {
  const names = [
    "WG_CONFIG",
    "WG_MTU",
    "WG_ADDRESS",
    "WG_ENDPOINT",
    "WG_LISTEN_PORT",
    "WG_TUNNEL_X",
    "WG_PRIVATE_KEY",
  ];
  const values = [INI, PIPE, "1400", "10.0.0.2/32", "h.example:1", "51820", PRIV, "WGEDGE_LOG_LEVEL", "info"];
  for (let i = 0; i < LOADER_ITERATIONS; i++) {
    const env: Record<string, string> = {};
    for (let k = 0; k < 1 + rand(4); k++) {
      env[names[rand(names.length)]] = mutate(values[rand(values.length)]);
    }
    if (rand(3) === 0) env.WGEDGE_LOG_LEVEL = mutate("info");
    if (rand(3) === 0) env.WGEDGE_ADMIN_LISTEN = mutate("127.0.0.1:8081");
    try {
      const { warnings } = await loadConfig({ env, flags: {} });
      for (const w of warnings) assert(!w.includes(PRIV), `key in warning ${w}`);
    } catch (e) {
      checkError(e, "loadConfig", JSON.stringify(env));
    }
  }
});
