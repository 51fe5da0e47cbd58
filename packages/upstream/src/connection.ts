import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  Client,
  type ClientCapabilities,
  type CreateMessageResult,
  type ElicitResult,
  type FetchLike,
  type ListRootsResult,
  type McpSubscription,
  PROTOCOL_VERSION_META_KEY,
  type PriorDiscovery,
  SdkError,
  SdkErrorCode,
  SSEClientTransport,
  type StandardSchemaV1,
  StreamableHTTPClientTransport,
  type SubscriptionFilter,
  type Transport,
  type VersionNegotiationOptions,
} from '@modelcontextprotocol/client';
import type { UpstreamSpec } from '@portcullis/config';
import {
  describeError,
  JsonRpcError,
  PortcullisError,
  type ProtocolEra,
  RpcCode,
  type RpcParams,
  type RpcResult,
} from '@portcullis/core';
import type { Logger } from 'pino';
import { type DirectHttpPeer, directRequest } from './direct-http.js';
import { EraVerdictCache } from './era-cache.js';
import { normaliseUpstreamError, UpstreamErrorCode, unavailableError } from './errors.js';
import { createNodeFetch } from './http-fetch.js';
import { ProcessGroupStdioTransport } from './stdio-transport.js';
import type {
  ConnectionOptions,
  ProgressUpdate,
  ServerRequestHandler,
  UpstreamConnection,
  UpstreamRequestOptions,
  UpstreamStatus,
} from './types.js';

/** The 2026 revision an upstream configured `era: modern` is pinned to. */
export const MODERN_PROTOCOL_VERSION = '2026-07-28';

export interface BackoffOptions {
  /** First delay after a failure. Default 250 ms. */
  readonly initialMs?: number;
  /** Ceiling of the doubling delay. Default 30 s. */
  readonly maxMs?: number;
}

export interface CreateConnectionOptions extends ConnectionOptions {
  readonly logger: Logger;
  /** Shared by every connection to the same upstream; a private cache is used when absent. */
  readonly eraCache?: EraVerdictCache;
  /** How the gateway introduces itself to the upstream. */
  readonly clientInfo?: { readonly name: string; readonly version: string };
  readonly backoff?: BackoffOptions;
  /** Grace period between SIGTERM and SIGKILL of a stdio process group. Default 2 s. */
  readonly killGraceMs?: number;
  /** The `fetch` HTTP and SSE transports use (tracing, custom TLS). Default: the global `fetch`. */
  readonly fetch?: FetchLike;
}

/** Opens one managed connection to `spec` and starts connecting at once. */
export function createUpstreamConnection(spec: UpstreamSpec, options: CreateConnectionOptions): UpstreamConnection {
  return new ManagedUpstreamConnection(spec, options);
}

/** Results pass through untouched; the SDK has already checked the envelope. */
const rawResult: StandardSchemaV1<unknown, RpcResult> = {
  '~standard': {
    version: 1,
    vendor: 'portcullis',
    validate: (value: unknown) =>
      typeof value === 'object' && value !== null && !Array.isArray(value)
        ? { value: value as RpcResult }
        : { issues: [{ message: 'result is not a JSON object' }] },
  },
};

/**
 * The SDK dispatches notifications (progress included) on a microtask but settles responses
 * synchronously, so a progress notification that arrives in the same read as its request's
 * response would find its handler already removed and be lost. Settling responses one macrotask
 * later lets every notification that preceded a response on the wire be delivered first.
 */
class OrderedClient extends Client {
  protected override _onresponse(response: Parameters<Client['_onresponse']>[0]): void {
    setImmediate(() => super._onresponse(response));
  }
}

/** Thrown by a connect attempt whose stdio child exited on the `server/discover` probe. */
class ExitedOnProbe extends Error {
  constructor(cause: unknown) {
    super('the stdio upstream exited on the server/discover probe', { cause });
  }
}

const DEFAULT_CLIENT_INFO = { name: 'portcullis', version: '0.1.0' } as const;

/** A connection that stayed up at least this long resets the backoff. */
const STABLE_CONNECTION_MS = 10_000;
/** Upper bound on the `server/discover` probe: a stdio server silent this long is treated as legacy. */
const MAX_PROBE_TIMEOUT_MS = 10_000;
const RELISTEN_DELAY_MS = 1_000;

interface LiveSession {
  readonly client: Client;
  readonly transport: Transport;
  readonly era: ProtocolEra;
  readonly connectedAt: number;
  /** The open `subscriptions/listen` stream (2026 era only). */
  subscription: McpSubscription | undefined;
  /** Serialises listen-filter updates. */
  listenChain: Promise<void>;
  /** Present when requests bypass the SDK client (a Streamable HTTP session, see `directRequest`). */
  readonly direct: DirectHttpPeer | undefined;
  /** Aborted when the session ends, failing its direct requests still in flight. */
  readonly ended: AbortController;
}

interface ReadyWaiter {
  resolve(): void;
  reject(error: unknown): void;
}

export class ManagedUpstreamConnection implements UpstreamConnection {
  readonly spec: UpstreamSpec;
  private statusValue: UpstreamStatus;
  private lastErrorValue: string | undefined;
  private session: LiveSession | undefined;
  /** The transport of the attempt in progress, so that `close()` can stop it mid-handshake. */
  private connectingTransport: Transport | undefined;
  private closed = false;
  private readonly waiters: ReadyWaiter[] = [];
  private readonly notificationListeners = new Set<(method: string, params: RpcParams) => void>();
  private readonly statusListeners = new Set<(status: UpstreamStatus) => void>();
  private readonly subscribedUris = new Set<string>();
  private readonly logger: Logger;
  private readonly eraCache: EraVerdictCache;
  private healthTimer: NodeJS.Timeout | undefined;
  private healthCheckRunning = false;
  private wakeSleeper: (() => void) | undefined;
  private readonly loop: Promise<void>;

  constructor(
    spec: UpstreamSpec,
    private readonly options: CreateConnectionOptions,
  ) {
    this.spec = spec;
    this.logger = options.logger;
    this.eraCache = options.eraCache ?? new EraVerdictCache();
    if (spec.disabled) {
      this.statusValue = 'disabled';
      this.loop = Promise.resolve();
    } else {
      this.statusValue = 'connecting';
      this.loop = this.run();
    }
  }

  get status(): UpstreamStatus {
    return this.statusValue;
  }
  get lastError(): string | undefined {
    return this.lastErrorValue;
  }
  get era(): ProtocolEra | undefined {
    return this.session?.era;
  }
  get protocolVersion(): string | undefined {
    return this.session?.client.getNegotiatedProtocolVersion();
  }
  get serverCapabilities(): Readonly<Record<string, unknown>> | undefined {
    return this.session?.client.getServerCapabilities();
  }
  get serverInfo(): { readonly name: string; readonly version: string } | undefined {
    return this.session?.client.getServerVersion();
  }
  get instructions(): string | undefined {
    return this.session?.client.getInstructions();
  }

  ready(): Promise<void> {
    switch (this.statusValue) {
      case 'connected':
        return Promise.resolve();
      case 'disabled':
        return Promise.reject(
          new PortcullisError(UpstreamErrorCode.Disabled, `upstream "${this.spec.name}" is disabled`),
        );
      case 'closed':
        return Promise.reject(unavailableError(this.spec.name, 'connection closed'));
      case 'failing':
        return Promise.reject(unavailableError(this.spec.name, this.lastErrorValue ?? 'not connected'));
      case 'connecting':
        return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
    }
  }

  async request(
    method: string,
    params: RpcParams | undefined,
    options: UpstreamRequestOptions = {},
  ): Promise<RpcResult> {
    const session = await this.currentSession();
    const { onProgress, signal } = options;
    if (session.direct !== undefined) {
      try {
        return await directRequest(session.direct, method, withoutProgressToken(params), {
          ...(signal && { signal }),
          ...(onProgress && { onProgress }),
          ...(options.headers && { headers: options.headers }),
          timeoutMs: options.timeoutMs ?? this.spec.requestTimeoutMs,
        });
      } catch (error) {
        throw this.classify(error, signal);
      }
    }
    try {
      return await session.client.request({ method, params: withoutProgressToken(params) }, rawResult, {
        signal,
        timeout: options.timeoutMs ?? this.spec.requestTimeoutMs,
        resetTimeoutOnProgress: true,
        // A 2026-era `input_required` result is the agent's to answer: hand it back verbatim.
        allowInputRequired: true,
        onprogress: onProgress ? (update) => onProgress(toProgressUpdate(update)) : undefined,
        ...(options.headers ? { headers: options.headers } : {}),
      });
    } catch (error) {
      throw this.classify(error, signal);
    }
  }

  async notify(method: string, params?: RpcParams): Promise<void> {
    const session = await this.currentSession();
    try {
      await session.client.notification(params === undefined ? { method } : { method, params });
    } catch (error) {
      throw this.classify(error);
    }
  }

  async subscribeResource(uri: string): Promise<void> {
    const session = await this.currentSession();
    if (this.subscribedUris.has(uri)) return;
    this.subscribedUris.add(uri);
    try {
      if (session.era === 'legacy') await session.client.subscribeResource({ uri });
      else await this.updateListen(session);
    } catch (error) {
      this.subscribedUris.delete(uri);
      throw this.classify(error);
    }
  }

  async unsubscribeResource(uri: string): Promise<void> {
    if (!this.subscribedUris.delete(uri)) return;
    const session = this.session;
    if (session === undefined) return;
    try {
      if (session.era === 'legacy') await session.client.unsubscribeResource({ uri });
      else await this.updateListen(session);
    } catch (error) {
      throw this.classify(error);
    }
  }

  onNotification(listener: (method: string, params: RpcParams) => void): () => void {
    this.notificationListeners.add(listener);
    return () => this.notificationListeners.delete(listener);
  }

  onStatus(listener: (status: UpstreamStatus) => void): () => void {
    this.statusListeners.add(listener);
    return () => this.statusListeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return this.loop;
    this.closed = true;
    this.stopHealthChecks();
    this.wakeSleeper?.();
    const session = this.session;
    this.session = undefined;
    const connecting = this.connectingTransport;
    await Promise.allSettled([
      session ? closeSession(session) : Promise.resolve(),
      connecting ? connecting.close() : Promise.resolve(),
    ]);
    this.rejectWaiters(unavailableError(this.spec.name, 'connection closed'));
    if (this.statusValue !== 'disabled') this.setStatus('closed');
    await this.loop;
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  private async run(): Promise<void> {
    let failures = 0;
    /** Set while the legacy verdict comes from a child that exited on the probe, not from an answer. */
    let tentativeLegacy = false;
    while (!this.closed) {
      this.setStatus('connecting');
      let disconnected: Promise<string>;
      try {
        const attempt = await this.connectOnce();
        disconnected = attempt.disconnected;
        if (this.closed) {
          await closeSession(attempt.session);
          break;
        }
        tentativeLegacy = false;
        this.session = attempt.session;
        this.lastErrorValue = undefined;
        this.setStatus('connected');
        this.resolveWaiters();
        this.afterConnect(attempt.session);
      } catch (error) {
        if (this.closed) break;
        if (error instanceof ExitedOnProbe) {
          // Not a failure: respawn at once with `initialize` (no backoff for this one exit).
          this.logger.info('stdio upstream exited on the server/discover probe; reconnecting with initialize');
          tentativeLegacy = true;
          continue;
        }
        if (tentativeLegacy) {
          // `initialize` failed too: the exit was no evidence of a legacy server after all.
          this.eraCache.delete(this.spec);
          tentativeLegacy = false;
        }
        failures += 1;
        this.lastErrorValue = describeError(error);
        this.logger.warn({ err: error, attempt: failures }, 'upstream connect failed');
        this.setStatus('failing');
        this.rejectWaiters(unavailableError(this.spec.name, error));
        await this.sleep(backoffDelay(failures, this.options.backoff));
        continue;
      }

      const reason = await disconnected;
      const session = this.session;
      this.session = undefined;
      this.stopHealthChecks();
      if (this.closed) break;
      if (session) void closeSession(session);
      const uptime = session ? Date.now() - session.connectedAt : 0;
      failures = uptime >= STABLE_CONNECTION_MS ? 1 : failures + 1;
      this.lastErrorValue = reason;
      this.logger.warn({ reason, uptimeMs: uptime }, 'upstream disconnected');
      this.setStatus('failing');
      await this.sleep(backoffDelay(failures, this.options.backoff));
    }
  }

  private async connectOnce(): Promise<{ session: LiveSession; disconnected: Promise<string> }> {
    const client = new OrderedClient(this.options.clientInfo ?? DEFAULT_CLIENT_INFO, {
      capabilities: (this.options.capabilities ?? {}) as ClientCapabilities,
      versionNegotiation: this.versionNegotiation(),
      // Never fulfil `input_required` here: the agent behind the gateway answers it.
      inputRequired: { autoFulfill: false },
    });
    client.fallbackNotificationHandler = async (notification) => {
      this.emitNotification(notification.method, (notification.params ?? {}) as RpcParams);
    };
    client.onerror = (error) => this.logger.debug({ err: error }, 'upstream protocol error');
    const onServerRequest = this.options.onServerRequest;
    if (onServerRequest) registerServerRequestHandlers(client, this.options.capabilities ?? {}, onServerRequest);

    let closeReason = 'connection closed';
    const disconnected = new Promise<string>((resolve) => {
      client.onclose = () => resolve(closeReason);
    });
    const transport = this.createTransport();
    transport.onerror = (error) => {
      closeReason = `connection closed: ${describeError(error)}`;
    };
    this.connectingTransport = transport;
    const prior = this.priorVerdict();
    try {
      await client.connect(transport, { prior, timeout: this.spec.requestTimeoutMs });
    } catch (error) {
      // A stdio child that exited once the probe reached it is a 2025 server that stops on any
      // pre-`initialize` request (rmcp does): it is legacy, and the next child gets `initialize`.
      const exitedOnProbe =
        prior === undefined &&
        this.spec.era === 'auto' &&
        transport instanceof ProcessGroupStdioTransport &&
        transport.sent > 0 &&
        transport.hasExited;
      if (prior !== undefined && error instanceof SdkError && error.code === SdkErrorCode.EraNegotiationFailed) {
        // The cached verdict no longer matches the server: the next attempt probes again.
        this.eraCache.delete(this.spec);
      }
      await client.close().catch(() => undefined);
      await transport.close().catch(() => undefined);
      if (exitedOnProbe) {
        this.eraCache.set(this.spec, { kind: 'legacy' });
        throw new ExitedOnProbe(error);
      }
      throw error;
    } finally {
      this.connectingTransport = undefined;
    }
    const era = client.getProtocolEra() ?? 'legacy';
    const ended = new AbortController();
    if (prior === undefined) this.rememberVerdict(client, era);
    this.logger.info(
      { era, protocolVersion: client.getNegotiatedProtocolVersion(), server: client.getServerVersion() },
      'upstream connected',
    );
    return {
      session: {
        client,
        transport,
        era,
        connectedAt: Date.now(),
        subscription: undefined,
        listenChain: Promise.resolve(),
        direct:
          transport instanceof StreamableHTTPClientTransport && this.options.fetch === undefined
            ? this.directPeer(client, transport, era, ended.signal)
            : undefined,
        ended,
      },
      disconnected,
    };
  }

  private afterConnect(session: LiveSession): void {
    this.startHealthChecks(session);
    if (session.era === 'modern') {
      void this.updateListen(session).catch((error) =>
        this.logger.warn({ err: error }, 'could not open subscriptions/listen stream'),
      );
    } else {
      for (const uri of this.subscribedUris) {
        session.client
          .subscribeResource({ uri })
          .catch((error) => this.logger.warn({ err: error, uri }, 'could not re-subscribe resource'));
      }
    }
  }

  private versionNegotiation(): VersionNegotiationOptions | undefined {
    const probe = { timeoutMs: Math.min(this.spec.requestTimeoutMs, MAX_PROBE_TIMEOUT_MS) };
    switch (this.spec.era) {
      case 'legacy':
        return undefined;
      case 'modern':
        return { mode: { pin: MODERN_PROTOCOL_VERSION }, probe };
      case 'auto':
        return { mode: 'auto', probe };
    }
  }

  /** A cached verdict the configured era allows: `auto` takes either, a modern pin only a modern one. */
  private priorVerdict(): PriorDiscovery | undefined {
    if (this.spec.era === 'legacy') return undefined;
    const verdict = this.eraCache.get(this.spec);
    if (verdict?.kind === 'legacy' && this.spec.era !== 'auto') return undefined;
    return verdict;
  }

  private rememberVerdict(client: Client, era: ProtocolEra): void {
    if (this.spec.era === 'legacy') return;
    const discover = client.getDiscoverResult();
    if (era === 'modern' && discover !== undefined) this.eraCache.set(this.spec, { kind: 'modern', discover });
    else if (era === 'legacy' && this.spec.era === 'auto') this.eraCache.set(this.spec, { kind: 'legacy' });
  }

  private createTransport(): Transport {
    const spec = this.spec;
    if (spec.transport === 'stdio') {
      return new ProcessGroupStdioTransport({
        command: spec.command,
        args: spec.args,
        env: spec.env,
        cwd: spec.cwd,
        logger: this.logger,
        killGraceMs: this.options.killGraceMs,
      });
    }
    const url = new URL(spec.url);
    const httpOptions = {
      requestInit: { headers: { ...spec.headers } },
      fetch: this.options.fetch ?? (spec.transport === 'sse' ? undefined : sharedNodeFetch()),
    };
    return spec.transport === 'sse'
      ? new SSEClientTransport(url, httpOptions)
      : new StreamableHTTPClientTransport(url, httpOptions);
  }

  /**
   * The session's side of direct requests: the same headers the SDK transport sends, notifications
   * to the same listeners, and server-to-client requests answered through the SDK transport for
   * exactly the capabilities declared (as `registerServerRequestHandlers` does for the SDK path).
   */
  private directPeer(
    client: Client,
    transport: StreamableHTTPClientTransport,
    era: ProtocolEra,
    closed: AbortSignal,
  ): DirectHttpPeer {
    const spec = this.spec;
    const protocolVersion = client.getNegotiatedProtocolVersion();
    if (spec.transport !== 'streamable-http') throw new Error('direct requests need a Streamable HTTP upstream');
    const inFlight = new Map<string | number, AbortController>();
    let headers: Record<string, string> | undefined;
    const answer = (id: unknown, outcome: { result: RpcResult } | { error: Record<string, unknown> }): void => {
      if (typeof id !== 'string' && typeof id !== 'number') return;
      transport
        .send({ jsonrpc: '2.0', id, ...outcome } as Parameters<StreamableHTTPClientTransport['send']>[0])
        .catch((error: unknown) => this.logger.debug({ err: error }, 'could not answer the upstream'));
    };
    if (era === 'modern') {
      // No session: every request carries the envelope and its version; closing a request's stream cancels it.
      const fixed: Record<string, string> = {
        ...spec.headers,
        'mcp-protocol-version': protocolVersion ?? MODERN_PROTOCOL_VERSION,
      };
      return {
        upstream: spec.name,
        url: new URL(spec.url),
        headers: () => fixed,
        closed,
        envelope: {
          [PROTOCOL_VERSION_META_KEY]: protocolVersion ?? MODERN_PROTOCOL_VERSION,
          [CLIENT_INFO_META_KEY]: this.options.clientInfo ?? DEFAULT_CLIENT_INFO,
          [CLIENT_CAPABILITIES_META_KEY]: this.options.capabilities ?? {},
        },
        notification: (method, params) => this.emitNotification(method, params),
        serverRequest: (message) =>
          this.logger.debug({ method: message.method }, 'a 2026-era upstream pushed a request; ignored'),
        cancel: () => {},
      };
    }
    return {
      upstream: spec.name,
      url: new URL(spec.url),
      closed,
      headers: () => {
        if (headers !== undefined) return headers;
        const current: Record<string, string> = { ...spec.headers };
        const sessionId = transport.sessionId;
        const protocolVersion = transport.protocolVersion;
        if (sessionId !== undefined) current['mcp-session-id'] = sessionId;
        if (protocolVersion !== undefined) current['mcp-protocol-version'] = protocolVersion;
        // Both are fixed once the handshake is done; before that nothing is sent this way.
        if (sessionId !== undefined && protocolVersion !== undefined) headers = current;
        return current;
      },
      notification: (method, params) => {
        if (method === 'notifications/cancelled') {
          const requestId = params.requestId;
          if ((typeof requestId === 'string' || typeof requestId === 'number') && inFlight.has(requestId)) {
            inFlight.get(requestId)?.abort(params.reason);
            return;
          }
        }
        this.emitNotification(method, params);
      },
      serverRequest: (message) => {
        const { id, method } = message;
        const params = (
          typeof message.params === 'object' && message.params !== null ? message.params : {}
        ) as RpcParams;
        if (method === 'ping') return answer(id, { result: {} });
        const capability = typeof method === 'string' ? SERVER_REQUEST_CAPABILITY[method] : undefined;
        const handler = this.options.onServerRequest;
        if (
          capability === undefined ||
          handler === undefined ||
          this.options.capabilities?.[capability] === undefined ||
          (typeof id !== 'string' && typeof id !== 'number')
        ) {
          return answer(id, { error: { code: RpcCode.MethodNotFound, message: 'Method not found' } });
        }
        const controller = new AbortController();
        inFlight.set(id, controller);
        handler(method as string, params, { signal: controller.signal })
          .then(
            (result) => answer(id, { result }),
            (error: unknown) =>
              answer(id, {
                error:
                  error instanceof JsonRpcError
                    ? error.toJSON()
                    : { code: RpcCode.InternalError, message: describeError(error) },
              }),
          )
          .finally(() => inFlight.delete(id));
      },
      cancel: (requestId, reason) => {
        client
          .notification({ method: 'notifications/cancelled', params: { requestId, reason } })
          .catch((error: unknown) => this.logger.debug({ err: error }, 'could not cancel an upstream request'));
      },
    };
  }

  // ---- 2026-era change notifications --------------------------------------------------------------

  /**
   * Opens (or replaces) the `subscriptions/listen` stream with the current filter: every list change
   * the server advertises, plus the subscribed resource URIs. A listen filter is fixed per stream,
   * so a changed URI set opens a new stream before closing the old one.
   */
  private updateListen(session: LiveSession): Promise<void> {
    const next = session.listenChain.then(async () => {
      if (this.session !== session) return;
      const filter = this.listenFilter(session);
      const previous = session.subscription;
      if (filter === undefined) {
        session.subscription = undefined;
        await previous?.close();
        return;
      }
      const subscription = await session.client.listen(filter);
      session.subscription = subscription;
      await previous?.close();
      void subscription.closed.then((reason) => {
        if (reason !== 'remote' || this.session !== session || session.subscription !== subscription) return;
        this.logger.info('subscriptions/listen stream dropped; listening again');
        setTimeout(() => {
          if (this.session === session && session.subscription === subscription) {
            this.updateListen(session).catch((error) =>
              this.logger.warn({ err: error }, 'could not re-open subscriptions/listen stream'),
            );
          }
        }, RELISTEN_DELAY_MS).unref();
      });
    });
    session.listenChain = next.catch(() => undefined);
    return next;
  }

  private listenFilter(session: LiveSession): SubscriptionFilter | undefined {
    const capabilities = session.client.getServerCapabilities() ?? {};
    const filter: SubscriptionFilter = {
      ...(capabilities.tools?.listChanged === true && { toolsListChanged: true }),
      ...(capabilities.prompts?.listChanged === true && { promptsListChanged: true }),
      ...(capabilities.resources?.listChanged === true && { resourcesListChanged: true }),
      ...(capabilities.resources?.subscribe === true &&
        this.subscribedUris.size > 0 && { resourceSubscriptions: [...this.subscribedUris] }),
    };
    return Object.keys(filter).length === 0 ? undefined : filter;
  }

  // ---- health ----------------------------------------------------------------------------------

  /**
   * 2025 era: `ping`. 2026 era: there is no ping, so `server/discover` (cheap, side-effect free, and
   * defined for every 2026 server) stands in for it. A failed check closes the session, which
   * hands the upstream to the reconnect loop.
   */
  private startHealthChecks(session: LiveSession): void {
    const interval = this.spec.healthCheckIntervalMs;
    if (interval <= 0) return;
    this.healthTimer = setInterval(() => void this.checkHealth(session), interval);
    this.healthTimer.unref();
  }

  private stopHealthChecks(): void {
    clearInterval(this.healthTimer);
    this.healthTimer = undefined;
  }

  private async checkHealth(session: LiveSession): Promise<void> {
    if (this.healthCheckRunning || this.session !== session) return;
    this.healthCheckRunning = true;
    const timeout = Math.min(this.spec.requestTimeoutMs, Math.max(this.spec.healthCheckIntervalMs, 1_000));
    try {
      if (session.era === 'modern') await session.client.discover({ timeout });
      else await session.client.ping({ timeout });
    } catch (error) {
      if (this.session === session && !this.closed) {
        this.logger.warn({ err: error }, 'upstream health check failed');
        this.lastErrorValue = `health check failed: ${describeError(error)}`;
        await closeSession(session);
      }
    } finally {
      this.healthCheckRunning = false;
    }
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private async currentSession(): Promise<LiveSession> {
    await this.ready();
    const session = this.session;
    if (session === undefined) throw unavailableError(this.spec.name, this.lastErrorValue ?? 'not connected');
    return session;
  }

  private classify(error: unknown, signal?: AbortSignal): Error {
    const normalised = normaliseUpstreamError(this.spec.name, error, signal);
    // A request that could not reach the upstream is evidence worth an immediate health check.
    if (normalised instanceof PortcullisError && normalised.code === UpstreamErrorCode.Unavailable) {
      const session = this.session;
      if (session) void this.checkHealth(session);
    }
    return normalised;
  }

  private emitNotification(method: string, params: RpcParams): void {
    for (const listener of this.notificationListeners) {
      try {
        listener(method, params);
      } catch (error) {
        this.logger.error({ err: error, method }, 'notification listener threw');
      }
    }
  }

  private setStatus(status: UpstreamStatus): void {
    if (this.statusValue === status) return;
    this.statusValue = status;
    for (const listener of this.statusListeners) {
      try {
        listener(status);
      } catch (error) {
        this.logger.error({ err: error }, 'status listener threw');
      }
    }
  }

  private resolveWaiters(): void {
    for (const waiter of this.waiters.splice(0)) waiter.resolve();
  }

  private rejectWaiters(error: unknown): void {
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.wakeSleeper = done;
    });
  }
}

async function closeSession(session: LiveSession): Promise<void> {
  session.ended.abort();
  const subscription = session.subscription;
  session.subscription = undefined;
  await subscription?.close().catch(() => undefined);
  // Closing the client closes its transport; the stdio transport kills the process group.
  await session.client.close().catch(() => undefined);
  await session.transport.close().catch(() => undefined);
}

/** `delay = initial · 2^(failures−1)`, capped, then jittered into [50 %, 100 %] of itself. */
export function backoffDelay(failures: number, options: BackoffOptions = {}): number {
  const initial = options.initialMs ?? 250;
  const max = options.maxMs ?? 30_000;
  const base = Math.min(max, initial * 2 ** Math.max(0, failures - 1));
  return Math.round(base / 2 + Math.random() * (base / 2));
}

/**
 * The SDK mints the upstream-side progress token when `onProgress` is given; a token the agent put
 * in `_meta` names the agent's own request and must not reach the upstream.
 */
function withoutProgressToken(params: RpcParams | undefined): RpcParams | undefined {
  const meta = params?._meta;
  if (params === undefined || typeof meta !== 'object' || meta === null || !('progressToken' in meta)) return params;
  const { progressToken: _agentToken, ...restMeta } = meta as Record<string, unknown>;
  const { _meta: _, ...rest } = params;
  return Object.keys(restMeta).length === 0 ? rest : { ...rest, _meta: restMeta };
}

function toProgressUpdate(update: { progress: number; total?: number; message?: string }): ProgressUpdate {
  return {
    progress: update.progress,
    ...(update.total !== undefined && { total: update.total }),
    ...(update.message !== undefined && { message: update.message }),
  };
}

/** The client capability each relayed server-to-client request needs. */
const SERVER_REQUEST_CAPABILITY: Readonly<Record<string, string>> = {
  'sampling/createMessage': 'sampling',
  'elicitation/create': 'elicitation',
  'roots/list': 'roots',
};

/**
 * Routes the upstream's sampling/elicitation/roots requests to the gateway, for exactly the
 * capabilities declared. (In the 2026 era these arrive as `input_required` results instead, which
 * `request()` returns to the caller.)
 */
function registerServerRequestHandlers(
  client: Client,
  capabilities: Readonly<Record<string, unknown>>,
  handler: ServerRequestHandler,
): void {
  // The SDK validates each request before the handler and its result after it, per method; the
  // results are the agent's, relayed as they are.
  const relay = (method: string, params: unknown, signal: AbortSignal): Promise<RpcResult> =>
    handler(method, (params ?? {}) as RpcParams, { signal });
  if (capabilities.sampling !== undefined) {
    client.setRequestHandler('sampling/createMessage', (request, ctx) =>
      relay(request.method, request.params, ctx.mcpReq.signal).then((result) => result as CreateMessageResult),
    );
  }
  if (capabilities.elicitation !== undefined) {
    client.setRequestHandler('elicitation/create', (request, ctx) =>
      relay(request.method, request.params, ctx.mcpReq.signal).then((result) => result as ElicitResult),
    );
  }
  if (capabilities.roots !== undefined) {
    client.setRequestHandler('roots/list', (request, ctx) =>
      relay(request.method, request.params, ctx.mcpReq.signal).then((result) => result as ListRootsResult),
    );
  }
}

let nodeFetch: FetchLike | undefined;

/** One keep-alive connection pool for every Streamable HTTP upstream of the process. */
function sharedNodeFetch(): FetchLike {
  nodeFetch ??= createNodeFetch();
  return nodeFetch;
}
