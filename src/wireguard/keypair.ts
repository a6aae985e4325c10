/** A transport session (wireguard-go Keypair) and the previous/current/next rotation (Keypairs). */
import { ReplayFilter } from "./replay.ts";
import type { SessionKeys } from "./noise.ts";

export class Keypair {
  readonly sendKey: Uint8Array;
  readonly receiveKey: Uint8Array;
  readonly localIndex: number;
  readonly remoteIndex: number;
  readonly isInitiator: boolean;
  /** Monotonic ms when the session was derived. */
  readonly created: number;
  /** Next counter to send. */
  sendNonce = 0;
  readonly replay = new ReplayFilter();

  constructor(keys: SessionKeys, created: number) {
    this.sendKey = keys.sendKey;
    this.receiveKey = keys.receiveKey;
    this.localIndex = keys.localIndex;
    this.remoteIndex = keys.remoteIndex;
    this.isInitiator = keys.isInitiator;
    this.created = created;
  }

  zero(): void {
    this.sendKey.fill(0);
    this.receiveKey.fill(0);
  }
}

export class Keypairs {
  previous: Keypair | undefined;
  current: Keypair | undefined;
  next: Keypair | undefined;

  all(): Keypair[] {
    return [this.previous, this.current, this.next].filter((k): k is Keypair => k !== undefined);
  }
}
