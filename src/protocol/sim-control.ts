// What a simulated phone is told by whoever runs it (the daemon's supervisor,
// `tsmuxd sim`): how its trust dialog answers Pair.

/**
 * How the phone answers Pair: "auto" taps Trust at once (or after
 * trustDelayMs), "prompt" shows the dialog until trust() / deny() is called,
 * "deny" always answers UserDeniedPairing.
 */
export type TrustMode = 'auto' | 'prompt' | 'deny';
export const TRUST_MODES: readonly TrustMode[] = ['auto', 'prompt', 'deny'];
