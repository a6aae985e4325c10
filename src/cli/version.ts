import { type Command, defineCommand } from "./command.ts";
import denoJson from "../../deno.json" with { type: "json" };

export const VERSION: string = denoJson.version;

export const versionCommand: Command = defineCommand({
  name: "version",
  summary: "Print the wgedge version.",
  usage: "version",
  flags: {},
  run() {
    console.log(`wgedge ${VERSION} (deno ${Deno.version.deno})`);
    return Promise.resolve(0);
  },
});
