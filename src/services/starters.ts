/**
 * Every service `serve` knows, in start order: the named tunnels first (services find them up), then the
 * services that use them. A new service adds its starter here.
 */
import type { ServiceStarter } from "./service.ts";
import { tunnelStarter } from "./tunnel/starter.ts";
import { relayStarter } from "./relay/starter.ts";
import { mwgpStarter } from "./mwgp/starter.ts";
import { rpcStarter, rpsStarter } from "./rp/starter.ts";
import { ntripCasterStarter } from "./ntrip/caster_starter.ts";
import { ntripStarter } from "./ntrip/starter.ts";
import { proxyStarter } from "./proxy/starter.ts";

export const SERVICE_STARTERS: readonly ServiceStarter[] = [
  tunnelStarter,
  relayStarter,
  mwgpStarter,
  rpsStarter,
  rpcStarter,
  ntripCasterStarter, // before the NTRIP relay workers, which may push to it
  ntripStarter,
  proxyStarter,
];
