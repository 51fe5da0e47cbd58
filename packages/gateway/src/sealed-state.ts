import { randomBytes } from 'node:crypto';
import { createRequestStateCodec, type ServerContext } from '@modelcontextprotocol/server';

/**
 * A `requestState` the gateway mints for a 2026-era `input_required` round and verifies on the
 * agent's retry: HMAC-sealed with a per-process random key (SDK `createRequestStateCodec`, as
 * `UpstreamInteractions` does) and prefixed so its owner recognises it. Signed, not encrypted: put
 * no secrets in the payload. A state minted by another process (or past `ttlSeconds`) fails.
 */
export interface SealedState<T> {
  readonly prefix: string;
  /** Whether `state` carries this codec's prefix (not whether it verifies). */
  owns(state: unknown): state is string;
  mint(payload: T): Promise<string>;
  /** The payload of a state this codec minted; rejects when forged, expired or foreign. */
  open(state: string): Promise<T>;
}

export function createSealedState<T>(prefix: string, ttlSeconds: number): SealedState<T> {
  const codec = createRequestStateCodec<T>({ key: randomBytes(32), ttlSeconds: Math.max(1, Math.ceil(ttlSeconds)) });
  // No `bind` callback: the codec never reads the context; callers bind what matters into the payload.
  const unbound = {} as ServerContext;
  return {
    prefix,
    owns: (state): state is string => typeof state === 'string' && state.startsWith(prefix),
    mint: async (payload) => `${prefix}${await codec.mint(payload)}`,
    open: async (state) => {
      if (!state.startsWith(prefix)) throw new Error('malformed');
      return codec.verify(state.slice(prefix.length), unbound);
    },
  };
}
