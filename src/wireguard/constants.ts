/** Protocol constants, named as in the whitepaper section 6 and wireguard-go device/constants.go. */
export const REKEY_AFTER_MESSAGES = 2 ** 60;
export const REJECT_AFTER_MESSAGES = 2 ** 64 - 2 ** 13 - 1;
export const REKEY_AFTER_TIME_MS = 120_000;
export const REKEY_ATTEMPT_TIME_MS = 90_000;
export const REKEY_TIMEOUT_MS = 5_000;
export const REKEY_TIMEOUT_JITTER_MAX_MS = 334;
export const MAX_TIMER_HANDSHAKES = REKEY_ATTEMPT_TIME_MS / REKEY_TIMEOUT_MS; // 18
export const REJECT_AFTER_TIME_MS = 180_000;
export const KEEPALIVE_TIMEOUT_MS = 10_000;
export const COOKIE_REFRESH_TIME_MS = 120_000;
export const HANDSHAKE_INITIATION_RATE_MS = 20; // 1000 / 50 per second
/** The initiator rekeys on receive when its key is this old (REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT - REKEY_TIMEOUT). */
export const REKEY_ON_RECEIVE_AGE_MS = REJECT_AFTER_TIME_MS - KEEPALIVE_TIMEOUT_MS - REKEY_TIMEOUT_MS;
/** Zero all key material this long after the last new session (REJECT_AFTER_TIME * 3). */
export const ZERO_KEY_MATERIAL_AFTER_MS = REJECT_AFTER_TIME_MS * 3;
/** Packets held per peer while a handshake is in flight (wireguard-go MaxStagedPackets). */
export const MAX_STAGED_PACKETS = 128;
/** Handshake messages per second above which the device considers itself under load (wireguard-go: 1/8 of a 1024 queue). */
export const UNDER_LOAD_HANDSHAKES_PER_SECOND = 128;
export const UNDER_LOAD_AFTER_TIME_MS = 1_000;
/** Per-source rate limit for handshakes while under load (wireguard-go ratelimiter). */
export const HANDSHAKES_PER_SECOND_PER_SOURCE = 20;
export const HANDSHAKE_BURST_PER_SOURCE = 5;
export const DEFAULT_MTU = 1420;
export const PADDING_MULTIPLE = 16;
