import type { FetchLike } from '@modelcontextprotocol/client';
import type { UpstreamSpec } from '@portcullis/config';
import { PortcullisError, type RpcParams } from '@portcullis/core';
import type { Logger } from 'pino';
import { type BackoffOptions, createUpstreamConnection } from './connection.js';
import { EraVerdictCache } from './era-cache.js';
import { UpstreamErrorCode } from './errors.js';
import type { ConnectionOptions, UpstreamConnection, UpstreamRegistry, UpstreamStatusReport } from './types.js';

export interface UpstreamPoolOptions {
  readonly logger: Logger;
  /** Era verdicts shared by every connection the pool opens. A fresh cache when absent. */
  readonly eraCache?: EraVerdictCache;
  /** Capabilities and server-request handler of the primary connections. Default: none declared. */
  readonly primary?: ConnectionOptions;
  readonly clientInfo?: { readonly name: string; readonly version: string };
  readonly backoff?: BackoffOptions;
  readonly killGraceMs?: number;
  readonly fetch?: FetchLike;
}

/** What changed in the set of upstreams, so that the gateway can invalidate merged catalogs. */
export interface UpstreamsChange {
  readonly added: readonly string[];
  readonly removed: readonly string[];
  /** Re-created because their definition changed. */
  readonly changed: readonly string[];
  /** Primaries that (re)connected: their catalogs may differ from before. */
  readonly reconnected: readonly string[];
}

interface UpstreamEntry {
  readonly spec: UpstreamSpec;
  /** Absent for a disabled upstream. */
  readonly primary: UpstreamConnection | undefined;
  /** Per-session connections by session key (only for `per-session` isolation). */
  readonly sessions: Map<string, UpstreamConnection>;
  readonly unsubscribe: Array<() => void>;
}

/**
 * Owns every connection to every upstream: one primary per enabled upstream (lists, health,
 * `shared` isolation) and lazily created per-session connections (`per-session` isolation).
 */
export class UpstreamPool {
  readonly eraCache: EraVerdictCache;
  private readonly entries = new Map<string, UpstreamEntry>();
  private readonly changeListeners = new Set<(change: UpstreamsChange) => void>();
  private readonly notificationListeners = new Set<(upstream: string, method: string, params: RpcParams) => void>();
  private unsubscribeRegistry: (() => void) | undefined;
  private started = false;
  private closed = false;
  /** Serialises registry changes and close, so that no connection is created after it. */
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly registry: UpstreamRegistry,
    private readonly options: UpstreamPoolOptions,
  ) {
    this.eraCache = options.eraCache ?? new EraVerdictCache();
  }

  /** Opens the primaries and follows registry changes. Resolves without waiting for upstreams to connect. */
  start(): void {
    if (this.started) return;
    this.started = true;
    for (const spec of this.registry.list()) this.entries.set(spec.name, this.openEntry(spec));
    this.unsubscribeRegistry = this.registry.onChange((specs) => {
      this.pending = this.pending
        .then(() => this.applySpecs(specs))
        .catch((error) => this.options.logger.error({ err: error }, 'applying upstream registry change failed'));
    });
    const names = [...this.entries.keys()];
    if (names.length > 0) this.emitChange({ added: names, removed: [], changed: [], reconnected: [] });
  }

  /** Resolves once every pending registry change has been applied. */
  settled(): Promise<void> {
    return this.pending;
  }

  names(): readonly string[] {
    return [...this.entries.keys()];
  }

  spec(upstream: string): UpstreamSpec {
    return this.entry(upstream).spec;
  }

  /** The primary connection of an enabled upstream. */
  primary(upstream: string): UpstreamConnection {
    const entry = this.entry(upstream);
    if (entry.primary === undefined) {
      throw new PortcullisError(UpstreamErrorCode.Disabled, `upstream "${upstream}" is disabled`);
    }
    return entry.primary;
  }

  /**
   * The connection that serves `sessionKey` on `upstream`: the primary for `shared` isolation
   * (`options` are then ignored: the primary declared its capabilities when it connected), or the
   * session's own connection for `per-session` isolation, created on first use with `options`.
   */
  acquire(upstream: string, sessionKey: string, options: ConnectionOptions = {}): UpstreamConnection {
    const entry = this.entry(upstream);
    const primary = this.primary(upstream);
    if (entry.spec.isolation === 'shared') return primary;
    const existing = entry.sessions.get(sessionKey);
    if (existing !== undefined) return existing;
    const connection = createUpstreamConnection(entry.spec, {
      ...this.connectionDefaults(entry.spec),
      logger: this.options.logger.child({ upstream: entry.spec.name, session: sessionKey }),
      capabilities: options.capabilities,
      onServerRequest: options.onServerRequest,
    });
    entry.sessions.set(sessionKey, connection);
    return connection;
  }

  /** Closes every connection belonging to the session (killing per-session stdio children). */
  async releaseSession(sessionKey: string): Promise<void> {
    const closing: Promise<void>[] = [];
    for (const entry of this.entries.values()) {
      const connection = entry.sessions.get(sessionKey);
      if (connection === undefined) continue;
      entry.sessions.delete(sessionKey);
      closing.push(connection.close());
    }
    await Promise.allSettled(closing);
  }

  report(): UpstreamStatusReport[] {
    return [...this.entries.values()].map(({ spec, primary, sessions }) => ({
      name: spec.name,
      transport: spec.transport,
      status: primary?.status ?? 'disabled',
      era: primary?.era,
      protocolVersion: primary?.protocolVersion,
      lastError: primary?.lastError,
      sessionConnections: sessions.size,
    }));
  }

  onUpstreamsChanged(listener: (change: UpstreamsChange) => void): () => void {
    this.changeListeners.add(listener);
    return () => this.changeListeners.delete(listener);
  }

  /** Notifications from every primary connection, tagged with the upstream's name. */
  onNotification(listener: (upstream: string, method: string, params: RpcParams) => void): () => void {
    this.notificationListeners.add(listener);
    return () => this.notificationListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return this.pending;
    this.closed = true;
    this.unsubscribeRegistry?.();
    this.pending = this.pending.then(async () => {
      const entries = [...this.entries.values()];
      this.entries.clear();
      await Promise.allSettled(entries.map((entry) => this.closeEntry(entry)));
    });
    return this.pending;
  }

  private entry(upstream: string): UpstreamEntry {
    const entry = this.entries.get(upstream);
    if (entry === undefined) {
      throw new PortcullisError(UpstreamErrorCode.Unknown, `no upstream named "${upstream}" is configured`);
    }
    return entry;
  }

  private connectionDefaults(spec: UpstreamSpec) {
    return {
      eraCache: this.eraCache,
      clientInfo: this.options.clientInfo,
      backoff: this.options.backoff,
      killGraceMs: this.options.killGraceMs,
      fetch: this.options.fetch,
      logger: this.options.logger.child({ upstream: spec.name }),
    };
  }

  private openEntry(spec: UpstreamSpec): UpstreamEntry {
    const unsubscribe: Array<() => void> = [];
    let primary: UpstreamConnection | undefined;
    if (!spec.disabled) {
      const connection = createUpstreamConnection(spec, {
        ...this.connectionDefaults(spec),
        capabilities: this.options.primary?.capabilities,
        onServerRequest: this.options.primary?.onServerRequest,
      });
      primary = connection;
      let connectedBefore = false;
      unsubscribe.push(
        connection.onNotification((method, params) => {
          for (const listener of this.notificationListeners) listener(spec.name, method, params);
        }),
        connection.onStatus((status) => {
          if (status !== 'connected') return;
          // The first connect is part of "added"; later ones may bring a different catalog.
          if (connectedBefore) this.emitChange({ added: [], removed: [], changed: [], reconnected: [spec.name] });
          connectedBefore = true;
        }),
      );
    }
    return { spec, primary, sessions: new Map(), unsubscribe };
  }

  private async closeEntry(entry: UpstreamEntry): Promise<void> {
    for (const unsubscribe of entry.unsubscribe) unsubscribe();
    const connections = [...entry.sessions.values()];
    entry.sessions.clear();
    if (entry.primary) connections.push(entry.primary);
    await Promise.allSettled(connections.map((connection) => connection.close()));
  }

  private async applySpecs(specs: readonly UpstreamSpec[]): Promise<void> {
    if (this.closed) return;
    const next = new Map(specs.map((spec) => [spec.name, spec]));
    const added: string[] = [];
    const removed: string[] = [];
    const changed: string[] = [];
    const closing: Promise<void>[] = [];
    for (const [name, entry] of this.entries) {
      const spec = next.get(name);
      if (spec === undefined) {
        removed.push(name);
      } else if (JSON.stringify(spec) !== JSON.stringify(entry.spec)) {
        changed.push(name);
      } else {
        continue;
      }
      this.entries.delete(name);
      this.eraCache.deleteUpstream(name);
      closing.push(this.closeEntry(entry));
    }
    // Old connections (and their process groups) are gone before replacements start.
    await Promise.allSettled(closing);
    for (const [name, spec] of next) {
      if (this.entries.has(name)) continue;
      if (!changed.includes(name)) added.push(name);
      this.entries.set(name, this.openEntry(spec));
    }
    if (added.length + removed.length + changed.length > 0)
      this.emitChange({ added, removed, changed, reconnected: [] });
  }

  private emitChange(change: UpstreamsChange): void {
    for (const listener of this.changeListeners) {
      try {
        listener(change);
      } catch (error) {
        this.options.logger.error({ err: error }, 'upstreams-changed listener threw');
      }
    }
  }
}
