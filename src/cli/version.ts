import type { Command } from "./command.ts";
import { parseFlags } from "./command.ts";
import denoJson from "../../deno.json" with { type: "json" };

export const VERSION: string = denoJson.version;

export const versionCommand: Command = {
  name: "version",
  summary: "Print the wgedge version.",
  usage: "version",
  run(args) {
    if (!parseFlags(this, args, {}, false)) return Promise.resolve(0);
    console.log(`wgedge ${VERSION} (deno ${Deno.version.deno})`);
    return Promise.resolve(0);
  },
};
