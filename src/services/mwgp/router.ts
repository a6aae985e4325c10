/**
 * Picking the WireGuard server for an initiation (server mode). Per configured server, in config order:
 * mac1 first (one BLAKE2s; random floods stop here without costing a DH), then the start of the Noise IK
 * responder (one DH) to decrypt the initiator's static key; inside the first server that decrypts it, the
 * exact pubkey match, else that server's fallback peer, whose csvl/ssvl (its own, else its server's) the
 * session gets.
 */
import { mac1Key, verifyMac1 } from "../../wireguard/cookie.ts";
import { openInitiationStatic, type StaticIdentity } from "../../wireguard/noise.ts";
import { equalBytes, toBase64 } from "../../util/bytes.ts";
import type { MwgpPeerConfig, MwgpServerConfig } from "../../config/mwgp.ts";
import type { InitiationMessage } from "../../wire/wireguard.ts";
import type { DropReason, ForwarderStats, Route, Router } from "./forwarder.ts";
import type { TargetResolver } from "./resolver.ts";

interface CompiledServer {
  label: string;
  identity: StaticIdentity;
  mac1Key: Uint8Array;
  peers: (MwgpPeerConfig & { publicKey: Uint8Array })[];
  fallback?: MwgpPeerConfig;
}

export function serverRouter(
  config: MwgpServerConfig,
  resolver: TargetResolver,
  stats: ForwarderStats,
): Router {
  const servers: CompiledServer[] = config.servers.map((s, i) => ({
    label: `servers[${i}] ${toBase64(s.publicKey).slice(0, 8)}`,
    identity: { privateKey: s.privateKey, publicKey: s.publicKey },
    mac1Key: mac1Key(s.publicKey),
    peers: s.peers.filter((p): p is MwgpPeerConfig & { publicKey: Uint8Array } => !!p.publicKey),
    fallback: s.peers.find((p) => !p.publicKey),
  }));

  return async (init: InitiationMessage): Promise<Route | DropReason> => {
    let macMatched = false;
    for (const s of servers) {
      if (!verifyMac1(init.bytes, s.mac1Key)) continue;
      macMatched = true;
      stats.dhOperations++;
      const opened = openInitiationStatic(s.identity, init);
      if (!opened) continue;
      const peer = s.peers.find((p) => equalBytes(p.publicKey, opened.remoteStatic)) ?? s.fallback;
      if (!peer) return "unknown_peer";
      const addr = await resolver.resolve(peer.forwardTo);
      if (!addr) return "resolve";
      return {
        server: addr,
        serverPublicKey: s.identity.publicKey,
        clientPublicKey: opened.remoteStatic,
        label: s.label,
        csvl: peer.csvl,
        ssvl: peer.ssvl,
      };
    }
    return macMatched ? "decrypt" : "mac1";
  };
}
