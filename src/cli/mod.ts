/** The command table. Each command lives in its own file; add it here. */
import type { Command } from "./command.ts";
import { versionCommand } from "./version.ts";
import { genkeyCommand, genpskCommand, pubkeyCommand } from "./keys.ts";
import { checkConfigCommand } from "./check_config.ts";
import { relayCommand } from "./relay.ts";
import { serveCommand } from "./serve.ts";
import { upCommand } from "./up.ts";
import { pingCommand } from "./ping.ts";
import { rpcCommand } from "./rpc.ts";
import { rpsCommand } from "./rps.ts";
import { demoCommand } from "./demo.ts";
import { mwgpCommand } from "./mwgp.ts";
import { ntripCommand } from "./ntrip.ts";

export const commands: Command[] = [
  versionCommand,
  genkeyCommand,
  pubkeyCommand,
  genpskCommand,
  checkConfigCommand,
  serveCommand,
  relayCommand,
  upCommand,
  pingCommand,
  rpsCommand,
  rpcCommand,
  demoCommand,
  mwgpCommand,
  ntripCommand,
];
