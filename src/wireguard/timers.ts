/**
 * Per-peer timers (whitepaper section 6, wireguard-go timers.go). Events from the send/receive paths arm or
 * stop them; all time comes from the injected Clock so tests drive them with ManualClock.
 */
import type { Clock, TimerHandle } from "../util/clock.ts";
import {
  KEEPALIVE_TIMEOUT_MS,
  MAX_TIMER_HANDSHAKES,
  REKEY_TIMEOUT_JITTER_MAX_MS,
  REKEY_TIMEOUT_MS,
  ZERO_KEY_MATERIAL_AFTER_MS,
} from "./constants.ts";

/**
 * A re-armable one-shot timer (wireguard-go's Timer with Mod/Del/IsPending). Lazy: the send and receive
 * paths move deadlines on almost every packet, so mod() and del() only record the deadline; the armed clock
 * timer, when it fires early, re-arms itself for the time left instead of being cancelled and re-created.
 */
export class Timer {
  #handle: TimerHandle | undefined;
  /** When the armed clock timer fires (monotonic ms). */
  #armedAt = 0;
  /** When fn should run; undefined = not pending. */
  #deadline: number | undefined;

  constructor(private readonly clock: Clock, private readonly fn: () => void) {}

  get isPending(): boolean {
    return this.#deadline !== undefined;
  }

  mod(ms: number): void {
    const deadline = this.clock.now() + ms;
    this.#deadline = deadline;
    if (this.#handle && this.#armedAt <= deadline) return; // fires early, then re-arms for the rest
    this.#arm(ms);
  }

  del(): void {
    this.#deadline = undefined;
  }

  /** Drops the clock timer too (peer removal), so nothing stays armed. */
  stop(): void {
    this.#deadline = undefined;
    this.clock.clearTimer(this.#handle);
    this.#handle = undefined;
  }

  #arm(ms: number): void {
    this.clock.clearTimer(this.#handle);
    this.#armedAt = this.clock.now() + ms;
    this.#handle = this.clock.setTimer(() => this.#fire(), ms);
  }

  #fire(): void {
    this.#handle = undefined;
    if (this.#deadline === undefined) return;
    const left = this.#deadline - this.clock.now();
    if (left > 0) {
      this.#arm(left);
      return;
    }
    this.#deadline = undefined;
    this.fn();
  }
}

/** What the timers need from the device for one peer. */
export interface TimerActions {
  sendHandshakeInitiation(isRetry: boolean): void;
  sendKeepalive(): void;
  /** Gave up after MAX_TIMER_HANDSHAKES: drop staged packets. */
  handshakeGaveUp(attempts: number): void;
  handshakeRetrying(attempt: number): void;
  /** Dead peer suspected: data sent, nothing heard for KEEPALIVE + REKEY_TIMEOUT. */
  newHandshakeNeeded(): void;
  zeroKeyMaterial(): void;
  persistentKeepaliveMs(): number;
  hasCurrentKeypair(): boolean;
}

export class PeerTimers {
  readonly retransmitHandshake: Timer;
  readonly sendKeepalive: Timer;
  readonly newHandshake: Timer;
  readonly zeroKeyMaterial: Timer;
  readonly persistentKeepalive: Timer;
  handshakeAttempts = 0;
  needAnotherKeepalive = false;
  #running = true;

  constructor(
    private readonly clock: Clock,
    private readonly actions: TimerActions,
    private readonly jitter: () => number,
  ) {
    this.retransmitHandshake = new Timer(clock, () => this.#onRetransmitHandshake());
    this.sendKeepalive = new Timer(clock, () => this.#onSendKeepalive());
    this.newHandshake = new Timer(clock, () => this.#onNewHandshake());
    this.zeroKeyMaterial = new Timer(clock, () => this.#running && actions.zeroKeyMaterial());
    this.persistentKeepalive = new Timer(clock, () => this.#onPersistentKeepalive());
  }

  #onRetransmitHandshake(): void {
    if (!this.#running) return;
    if (this.handshakeAttempts > MAX_TIMER_HANDSHAKES) {
      this.actions.handshakeGaveUp(this.handshakeAttempts);
      this.sendKeepalive.del();
      // Keys stay until the zeroing timer; arm it if nothing else did.
      if (!this.zeroKeyMaterial.isPending) this.zeroKeyMaterial.mod(ZERO_KEY_MATERIAL_AFTER_MS);
      return;
    }
    this.handshakeAttempts++;
    this.actions.handshakeRetrying(this.handshakeAttempts + 1);
    this.actions.sendHandshakeInitiation(true);
  }

  #onSendKeepalive(): void {
    if (!this.#running) return;
    this.actions.sendKeepalive();
    if (this.needAnotherKeepalive) {
      this.needAnotherKeepalive = false;
      this.sendKeepalive.mod(KEEPALIVE_TIMEOUT_MS);
    }
  }

  #onNewHandshake(): void {
    if (!this.#running) return;
    this.actions.newHandshakeNeeded();
  }

  #onPersistentKeepalive(): void {
    if (!this.#running) return;
    if (this.actions.persistentKeepaliveMs() > 0) this.actions.sendKeepalive();
  }

  /** Data (not keepalive) was sent: expect something back within KEEPALIVE + REKEY_TIMEOUT. */
  dataSent(): void {
    if (!this.newHandshake.isPending) {
      this.newHandshake.mod(KEEPALIVE_TIMEOUT_MS + REKEY_TIMEOUT_MS + this.jitter());
    }
  }

  /** Data was received: answer with a keepalive if we have nothing to say within KEEPALIVE_TIMEOUT. */
  dataReceived(): void {
    if (!this.sendKeepalive.isPending) this.sendKeepalive.mod(KEEPALIVE_TIMEOUT_MS);
    else this.needAnotherKeepalive = true;
  }

  anyAuthenticatedPacketSent(): void {
    this.sendKeepalive.del();
  }

  anyAuthenticatedPacketReceived(): void {
    this.newHandshake.del();
  }

  anyAuthenticatedPacketTraversal(): void {
    const interval = this.actions.persistentKeepaliveMs();
    if (interval > 0) this.persistentKeepalive.mod(interval);
  }

  handshakeInitiated(): void {
    this.retransmitHandshake.mod(REKEY_TIMEOUT_MS + this.jitter());
  }

  handshakeComplete(): void {
    this.retransmitHandshake.del();
    this.handshakeAttempts = 0;
  }

  sessionDerived(): void {
    this.zeroKeyMaterial.mod(ZERO_KEY_MATERIAL_AFTER_MS);
  }

  stop(): void {
    this.#running = false;
    for (
      const t of [
        this.retransmitHandshake,
        this.sendKeepalive,
        this.newHandshake,
        this.zeroKeyMaterial,
        this.persistentKeepalive,
      ]
    ) {
      t.stop();
    }
  }
}

export function jitterFrom(random: (buf: Uint8Array) => Uint8Array): () => number {
  return () => {
    const b = random(new Uint8Array(2));
    return ((b[0] << 8) | b[1]) % REKEY_TIMEOUT_JITTER_MAX_MS;
  };
}
