// What a simulated phone is told by whoever runs it (the daemon's supervisor,
// `tsmuxd sim`): how its trust dialog answers Pair.

/** auto: accept at once; prompt: wait for a trust/deny command; deny: refuse. */
export type TrustMode = 'auto' | 'prompt' | 'deny';
export const TRUST_MODES: readonly TrustMode[] = ['auto', 'prompt', 'deny'];
