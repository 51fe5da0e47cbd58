import type { Implementation, ServerCapabilities } from '@modelcontextprotocol/server';
import type { Config } from '@portcullis/config';
import {
  composeStages,
  describeError,
  type Identity,
  namespacedUri,
  type RequestContext,
  type RouteTarget,
  type RpcParams,
  type RpcResult,
  type SessionInfo,
  STAGE_ORDER,
  type Stage,
  type StagedPipeline,
} from '@portcullis/core';
import type { UpstreamConnection } from '@portcullis/upstream';
import type { Logger } from 'pino';
import { Catalog, type ListKind, listKindsForNotification } from './catalog.js';
import { CursorCodec } from './cursor.js';
import type { ForwardDeps } from './forward.js';
import type { ListFilter, OutboundFilter } from './hooks.js';
import { UpstreamInteractions } from './interactions.js';
import type { GatewayInternals } from './internals.js';
import { type ListenHost, ListenTracker, resourceSubscriptionsOf } from './listen.js';
import type { UpstreamProvider } from './provider.js';
import { SessionScope } from './scope.js';
import { AgentSession, type SessionInit } from './session.js';
import { SessionCatalog } from './session-catalog.js';

export interface GatewayOptions {
  readonly config: Config;
  readonly provider: UpstreamProvider;
  readonly logger: Logger;
  /** Stages plugged into the pipeline slots; an empty slot passes through. */
  readonly stages?: readonly Stage[];
  readonly serverInfo?: Implementation;
  /**
   * How long an upstream call of a 2026-era agent stays parked, waiting for the agent to retry with
   * the answer to what a 2025-era upstream pushed (see `UpstreamInteractions`). Default 120 s.
   */
  readonly inputRequiredTimeoutMs?: number;
  /** Which catalog items a request's list shows (policy `hide`); absent: all. */
  readonly listFilter?: ListFilter;
  /** Redaction of notifications and server-to-client requests relayed from upstreams to agents. */
  readonly outbound?: OutboundFilter;
  /** Told when agent sessions close and when notifications reach agents (the session log listens here). */
  readonly observer?: SessionObserver;
}

/**
 * Session lifecycle and outbound notifications, for observers such as the session log. Called
 * synchronously on the message path: implementations queue their work and return at once.
 */
export interface SessionObserver {
  /** An agent session ended: `closed` by its transport, or `shutdown` when the gateway closes. */
  sessionClosed?(sessionId: string, reason: 'closed' | 'shutdown'): void;
  /** A notification was handed to an agent's transport (relayed from an upstream, or the gateway's own). */
  notified?(sessionId: string, method: string, params: RpcParams | undefined): void;
  /** A 2025-era agent completed the `initialize` handshake: the session and both halves of the exchange. */
  sessionOpened?(
    session: SessionInfo,
    identity: Identity,
    handshake: { readonly request: RpcParams; readonly result: RpcParams },
  ): void;
  /** A notification arrived from the agent (cancellation, roots changes, initialized, ...). */
  received?(sessionId: string, method: string, params: RpcParams | undefined): void;
  /** A server-to-client request (sampling, elicitation, roots) is being sent to the agent. */
  requested?(sessionId: string, method: string, params: RpcParams): void;
  /** The agent answered such a request (or it failed). */
  answered?(
    sessionId: string,
    method: string,
    outcome: { readonly result: RpcResult } | { readonly error: string },
  ): void;
}

/** Change events the front transports turn into notifications for sessionless (2026-era) agents. */
export interface GatewayEvents {
  listChanged(kind: 'tools' | 'prompts' | 'resources'): void;
  resourceUpdated(uri: string): void;
}

export interface UpstreamHealth {
  readonly name: string;
  readonly status: UpstreamConnection['status'] | 'absent';
  readonly era: string | undefined;
  readonly lastError: string | undefined;
}

/**
 * The gateway: one merged catalog over every upstream, the request pipeline, and the agent
 * sessions the front transports create. Transports call `createSession` and drive the SDK
 * `Server` it returns; they know nothing of routing or policy.
 */
export class Gateway implements GatewayInternals, ListenHost {
  readonly serverInfo: Implementation;
  readonly logger: Logger;
  readonly catalog: Catalog;
  readonly provider: UpstreamProvider;
  readonly forwardDeps: ForwardDeps;
  readonly interactions: UpstreamInteractions;
  readonly outbound: OutboundFilter | undefined;
  private readonly config: Config;
  private readonly sessions = new Set<AgentSession>();
  private readonly composed: StagedPipeline;
  private readonly eventListeners = new Set<Partial<GatewayEvents>>();
  private readonly watched = new WeakSet<UpstreamConnection>();
  private readonly subscriptionCounts = new Map<string, number>();
  /** For each pending kind, the number of sessions started when it last changed (see `emitListChanged`). */
  private readonly pendingListChanges = new Map<'tools' | 'prompts' | 'resources', number>();
  private sessionsStarted = 0;
  private readonly sessionOrdinals = new WeakMap<AgentSession, number>();
  private listChangeTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribeProvider: () => void;
  /** Per upstream session key: its dedicated connections and catalog view (see `SessionScope`). */
  private readonly scopes = new Map<string, SessionScope>();
  /** Gateway URIs named by open 2026-era `subscriptions/listen` streams, with how many streams name each. */
  private readonly listened = new Map<string, number>();
  readonly observer: SessionObserver | undefined;
  private closing = false;

  constructor(options: GatewayOptions) {
    this.config = options.config;
    this.observer = options.observer;
    this.provider = options.provider;
    this.logger = options.logger;
    this.serverInfo = options.serverInfo ?? { name: options.config.gateway.name, version: '0.1.0' };
    this.catalog = new Catalog(
      { specs: () => this.provider.specs(), primary: (name) => this.provider.primary(name) },
      { separator: options.config.gateway.separator },
      options.logger,
    );
    this.interactions = new UpstreamInteractions({
      parkMs: options.inputRequiredTimeoutMs ?? 120_000,
      prefixOf: (upstream) => this.prefixOf(upstream),
    });
    this.forwardDeps = {
      interactions: this.interactions,
      catalog: this.catalog,
      cursors: new CursorCodec(),
      pageSize: options.config.gateway.pageSize,
      prefixOf: (upstream) => this.prefixOf(upstream),
      listFilter: options.listFilter,
    };
    this.outbound = options.outbound;
    const stages = options.stages ?? [];
    for (const stage of stages) {
      if (!STAGE_ORDER.includes(stage.name)) throw new Error(`unknown pipeline stage "${stage.name}"`);
    }
    // Composed once: every session's requests run the same stages around that session's `forward`.
    this.composed = composeStages(stages);
    this.watchPrimaries();
    this.unsubscribeProvider = this.provider.onUpstreamsChanged(() => {
      this.watchPrimaries();
      this.catalog.invalidateAll();
      for (const kind of ['tools', 'prompts', 'resources'] as const) this.queueListChanged(kind);
    });
  }

  createSession(init: SessionInit): AgentSession {
    const session = new AgentSession(this, init);
    this.sessions.add(session);
    this.sessionOrdinals.set(session, ++this.sessionsStarted);
    return session;
  }

  /**
   * Subscribes upstream (reference-counted on the primary, shared with 2025-era `resources/subscribe`)
   * for the gateway URIs a 2026-era `subscriptions/listen` stream names, until the returned function
   * is called. URIs no upstream owns are ignored, as is everything when no upstream supports
   * subscriptions (the SDK then does not honour `resourceSubscriptions` either).
   */
  listen(uris: readonly string[]): () => void {
    if (!this.capabilities().resources?.subscribe) return () => undefined;
    const unique = [...new Set(uris)];
    for (const uri of unique) this.listened.set(uri, (this.listened.get(uri) ?? 0) + 1);
    const subscribed = Promise.all(
      unique.map(async (uri): Promise<RouteTarget | undefined> => {
        try {
          const owner = await this.catalog.resolveUri(uri);
          if (!owner) return undefined;
          const target: RouteTarget = { upstream: owner.upstream, originalName: owner.original, namespacedName: uri };
          await this.subscriptions.add(target);
          return target;
        } catch (error) {
          this.logger.warn({ uri, err: describeError(error) }, 'subscribing upstream for a listen stream failed');
          return undefined;
        }
      }),
    );
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const uri of unique) {
        const count = (this.listened.get(uri) ?? 1) - 1;
        if (count > 0) this.listened.set(uri, count);
        else this.listened.delete(uri);
      }
      // Removal waits for the additions, so the reference counts never go below what was added.
      void subscribed.then((targets) =>
        Promise.allSettled(
          targets
            .filter((target): target is RouteTarget => target !== undefined)
            .map((target) => this.subscriptions.remove(target)),
        ),
      );
    };
  }

  /**
   * For one 2026-era HTTP request: when it is a `subscriptions/listen` naming resources, subscribes
   * upstream and returns the release to call when the response ends; otherwise `undefined`.
   */
  listenFor(message: unknown): (() => void) | undefined {
    if (typeof message !== 'object' || message === null || !('method' in message)) return undefined;
    if (message.method !== 'subscriptions/listen') return undefined;
    const uris = resourceSubscriptionsOf('params' in message ? message.params : undefined);
    return uris.length > 0 ? this.listen(uris) : undefined;
  }

  /** A tracker the front shows a connection's inbound messages to (see `ListenTracker`). */
  listenTracker(): ListenTracker {
    return new ListenTracker(this);
  }

  /** Whether an open `subscriptions/listen` stream names this gateway URI. */
  isListened(uri: string): boolean {
    return this.listened.has(uri);
  }

  /** Subscribes to change events (used by the 2026-era HTTP front to feed `subscriptions/listen`). */
  onEvents(listener: Partial<GatewayEvents>): () => void {
    this.eventListeners.add(listener);
    return () => this.eventListeners.delete(listener);
  }

  get sessionCount(): number {
    return this.sessions.size;
  }

  health(): UpstreamHealth[] {
    return this.provider.specs().map((spec) => {
      const connection = this.provider.primary(spec.name);
      return {
        name: spec.name,
        status: connection?.status ?? 'absent',
        era: connection?.era,
        lastError: connection?.lastError,
      };
    });
  }

  /** Ready when every enabled upstream's primary connection is up. */
  isReady(): boolean {
    return this.health().every((upstream) => upstream.status === 'connected');
  }

  async close(): Promise<void> {
    this.closing = true;
    this.unsubscribeProvider();
    if (this.listChangeTimer) clearTimeout(this.listChangeTimer);
    await Promise.allSettled([...this.sessions].map((session) => session.close()));
    for (const scope of this.scopes.values()) scope.dispose();
    this.scopes.clear();
    this.interactions.close();
  }

  // ---- GatewayInternals ----

  capabilities(): ServerCapabilities {
    const capabilities: ServerCapabilities = {};
    for (const spec of this.provider.specs()) {
      const upstream = this.provider.primary(spec.name)?.serverCapabilities;
      if (!upstream) continue;
      if (upstream.tools) capabilities.tools = { listChanged: true };
      if (upstream.prompts) capabilities.prompts = { listChanged: true };
      if (upstream.resources) {
        const subscribe = Boolean(capabilities.resources?.subscribe) || hasSubscribe(upstream.resources);
        capabilities.resources = subscribe ? { listChanged: true, subscribe: true } : { listChanged: true };
      }
      if (upstream.completions) capabilities.completions = {};
      if (upstream.logging) capabilities.logging = {};
    }
    return capabilities;
  }

  instructions(): string | undefined {
    const parts = this.provider
      .specs()
      .map((spec) => {
        const text = this.provider.primary(spec.name)?.instructions;
        return text ? `## ${spec.name}\n${text}` : undefined;
      })
      .filter((part): part is string => part !== undefined);
    return parts.length > 0 ? parts.join('\n\n') : undefined;
  }

  prefixOf(upstream: string): string | undefined {
    return this.provider.specs().find((spec) => spec.name === upstream)?.namePrefix;
  }

  pipeline(ctx: RequestContext, forward: (ctx: RequestContext) => Promise<RpcResult>): Promise<RpcResult> {
    return this.composed(ctx, forward);
  }

  readonly subscriptions = {
    add: async (target: RouteTarget): Promise<void> => {
      const key = `${target.upstream}\u0000${target.originalName}`;
      const count = this.subscriptionCounts.get(key) ?? 0;
      this.subscriptionCounts.set(key, count + 1);
      if (count > 0) return;
      const connection = this.provider.primary(target.upstream);
      if (!connection) return;
      try {
        await connection.subscribeResource(target.originalName);
      } catch (error) {
        this.subscriptionCounts.set(key, (this.subscriptionCounts.get(key) ?? 1) - 1);
        throw error;
      }
    },
    remove: async (target: RouteTarget): Promise<void> => {
      const key = `${target.upstream}\u0000${target.originalName}`;
      const count = this.subscriptionCounts.get(key) ?? 0;
      if (count <= 1) this.subscriptionCounts.delete(key);
      else this.subscriptionCounts.set(key, count - 1);
      if (count !== 1) return;
      await this.provider.primary(target.upstream)?.unsubscribeResource(target.originalName);
    },
  };

  onUpstreamNotification(upstream: string, method: string, params: RpcParams): void {
    const kinds = listKindsForNotification(method);
    if (kinds.length > 0) {
      this.catalog.invalidate(upstream, kinds);
      this.queueListChanged(kinds[0] === 'resourceTemplates' ? 'resources' : (kinds[0] as ListKind as 'tools'));
      return;
    }
    if (method === 'notifications/resources/updated' && typeof params.uri === 'string') {
      const uri = namespacedUri(this.prefixOf(upstream), params.uri);
      const listened = this.listened.has(uri);
      for (const session of this.sessions) {
        // A 2026-era stdio session's notifications pass the SDK's listen router, which keeps only
        // what that connection's streams asked for; 2026-era HTTP streams are fed by the listeners below.
        const listening = listened && session.era === 'modern' && session.frontTransport === 'stdio';
        if (listening || session.isSubscribed(uri)) void session.notify(method, { ...params, uri });
      }
      for (const listener of this.eventListeners) listener.resourceUpdated?.(uri);
    }
  }

  sessionClosed(session: AgentSession): void {
    this.sessions.delete(session);
    this.observer?.sessionClosed?.(session.id, this.closing ? 'shutdown' : 'closed');
  }

  observeNotification(sessionId: string, method: string, params: RpcParams | undefined): void {
    this.observer?.notified?.(sessionId, method, params);
  }

  /**
   * What a front transport received from the agent of `sessionId`, as parsed JSON: its
   * notifications go to the observer (requests are recorded by the pipeline).
   */
  observeInbound(sessionId: string | undefined, message: unknown): void {
    const received = this.observer?.received;
    if (!received || sessionId === undefined) return;
    for (const item of Array.isArray(message) ? message : [message]) {
      if (typeof item !== 'object' || item === null || 'id' in item) continue;
      const { method, params } = item as { method?: unknown; params?: unknown };
      if (typeof method !== 'string') continue;
      received(sessionId, method, typeof params === 'object' && params !== null ? (params as RpcParams) : undefined);
    }
  }

  scopeFor(key: string): SessionScope {
    let scope = this.scopes.get(key);
    if (!scope) {
      const view = new SessionCatalog(
        this.catalog,
        { specs: () => this.provider.specs(), primary: (name) => this.provider.primary(name) },
        { separator: this.config.gateway.separator },
        this.logger,
      );
      scope = new SessionScope(key, view, this);
      this.scopes.set(key, scope);
    }
    return scope;
  }

  /**
   * The input schema of a tool as the open scope of `upstreamSessionKey` lists it, from the cache
   * only (no upstream round trip): `undefined` when there is no such scope yet, the list is not
   * cached, or the tool is not listed.
   */
  cachedToolInputSchema(upstreamSessionKey: string, name: string): Readonly<Record<string, unknown>> | undefined {
    const schema = this.scopes.get(upstreamSessionKey)?.catalog.peekName('tools', name)?.item.inputSchema;
    return typeof schema === 'object' && schema !== null && !Array.isArray(schema)
      ? (schema as Record<string, unknown>)
      : undefined;
  }

  releaseScope(key: string): void {
    this.scopes.get(key)?.dispose();
    this.scopes.delete(key);
  }

  relayPush(
    connection: UpstreamConnection,
    method: string,
    params: RpcParams,
    signal: AbortSignal,
  ): Promise<RpcResult> | undefined {
    return this.interactions.push(connection, method, params, signal);
  }

  announceListChanged(kind: 'tools' | 'prompts' | 'resources'): void {
    for (const listener of this.eventListeners) listener.listChanged?.(kind);
  }

  // ---- internals ----

  private watchPrimaries(): void {
    for (const spec of this.provider.specs()) {
      const connection = this.provider.primary(spec.name);
      if (!connection || this.watched.has(connection)) continue;
      this.watched.add(connection);
      connection.onNotification((method, params) => this.onPrimaryNotification(spec.name, connection, method, params));
      let wasConnected = connection.status === 'connected';
      connection.onStatus((status) => {
        // A reconnected upstream may list something else than before.
        if (status === 'connected' && wasConnected === false) {
          this.catalog.invalidate(spec.name);
          for (const kind of ['tools', 'prompts', 'resources'] as const) this.queueListChanged(kind);
        }
        wasConnected = status === 'connected' ? true : wasConnected === true ? false : wasConnected;
      });
    }
  }

  private onPrimaryNotification(
    upstream: string,
    connection: UpstreamConnection,
    method: string,
    params: RpcParams,
  ): void {
    if (method.endsWith('/list_changed') || method === 'notifications/resources/updated') {
      this.onUpstreamNotification(upstream, method, params);
      return;
    }
    // Anything else (logging, progress outside a call) goes to the sessions with a call in flight on this connection.
    let delivered = false;
    for (const session of this.sessions) delivered = session.deliverDuringCall(connection, method, params) || delivered;
    if (!delivered) this.logger.debug({ upstream, method }, 'upstream notification outside any call dropped');
  }

  private queueListChanged(kind: 'tools' | 'prompts' | 'resources'): void {
    this.pendingListChanges.set(kind, this.sessionsStarted);
    if (this.listChangeTimer) return;
    this.listChangeTimer = setTimeout(() => {
      this.listChangeTimer = undefined;
      const pending = [...this.pendingListChanges];
      this.pendingListChanges.clear();
      for (const [kind, startedBefore] of pending) this.emitListChanged(kind, startedBefore);
    }, this.config.gateway.listChangedDebounceMs);
    this.listChangeTimer.unref();
  }

  /**
   * Tells the sessions that started before the last change of `kind` (the first `startedBefore`
   * sessions): a session that started after it can only have listed the changed catalog, since the
   * change invalidated it at once; the debounce delays only the notification.
   */
  private emitListChanged(kind: 'tools' | 'prompts' | 'resources', startedBefore: number): void {
    const method = `notifications/${kind}/list_changed`;
    const capabilities = this.capabilities();
    if (!capabilities[kind]) return;
    for (const session of this.sessions) {
      if ((this.sessionOrdinals.get(session) ?? 0) > startedBefore) continue;
      session.notify(method).catch((error: unknown) => {
        this.logger.debug({ session: session.id, err: describeError(error) }, 'list_changed not delivered');
      });
    }
    for (const listener of this.eventListeners) listener.listChanged?.(kind);
  }
}

function hasSubscribe(resources: unknown): boolean {
  return (
    typeof resources === 'object' && resources !== null && (resources as { subscribe?: unknown }).subscribe === true
  );
}
