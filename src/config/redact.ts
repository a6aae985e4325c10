/**
 * The effective config as JSON-able data with every secret replaced by "[redacted]", for `check-config`.
 *
 * What is secret is decided by the one rule in src/util/secret.ts (field names, at any depth, and URL
 * credentials inside strings), so a section added later is covered without touching this file as long as its
 * secret fields are named like secrets. Key bytes left (public keys: secret keys sit under secret names) are
 * shown in base64.
 */
import { redactDeep } from "../util/secret.ts";

export { isSecretField, REDACTED, redactUrlCredentials } from "../util/secret.ts";

/** JSON-able copy of `config` with secrets replaced by "[redacted]" and public keys in base64. */
export function redactConfig(config: unknown): unknown {
  return redactDeep(config, { bytes: "base64" });
}
