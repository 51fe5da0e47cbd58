import type { UpstreamSpec } from '@portcullis/config';
import type { ConnectionOptions, UpstreamConnection } from '@portcullis/upstream';

/**
 * What the gateway needs from the back side. The upstream pool implements it; keeping the gateway
 * on this narrow interface lets the store-backed registry (admin CLI) change upstreams underneath.
 */
export interface UpstreamProvider {
  /** Enabled upstreams in configuration order. */
  specs(): readonly UpstreamSpec[];
  /** The long-lived connection used for lists, health and `shared` calls. */
  primary(name: string): UpstreamConnection | undefined;
  /** The connection serving `sessionKey`: the primary for `shared` isolation, a dedicated one for `per-session`. */
  acquire(name: string, sessionKey: string, options: ConnectionOptions): UpstreamConnection;
  /** Closes the dedicated connections of a session (killing their stdio children). */
  releaseSession(sessionKey: string): Promise<void>;
  /** Fires after upstreams were added, removed or changed. */
  onUpstreamsChanged(listener: () => void): () => void;
}

/** The parts of `UpstreamPool` the adapter below uses. */
export interface PoolLike {
  names(): readonly string[];
  spec(name: string): UpstreamSpec;
  primary(name: string): UpstreamConnection;
  acquire(name: string, sessionKey: string, options: ConnectionOptions): UpstreamConnection;
  releaseSession(sessionKey: string): Promise<void>;
  onUpstreamsChanged(listener: () => void): () => void;
}

/** Presents an upstream pool as the gateway's provider: disabled upstreams are left out. */
export function providerFromPool(pool: PoolLike): UpstreamProvider {
  return {
    specs: () =>
      pool
        .names()
        .map((name) => pool.spec(name))
        .filter((spec) => !spec.disabled),
    primary: (name) => {
      if (!pool.names().includes(name) || pool.spec(name).disabled) return undefined;
      return pool.primary(name);
    },
    acquire: (name, sessionKey, options) => pool.acquire(name, sessionKey, options),
    releaseSession: (sessionKey) => pool.releaseSession(sessionKey),
    onUpstreamsChanged: (listener) => pool.onUpstreamsChanged(() => listener()),
  };
}
