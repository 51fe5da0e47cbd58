import { randomUUID } from 'node:crypto';
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  type HandlerResultTypeMap,
  type Implementation,
  LOG_LEVEL_META_KEY,
  McpServer,
  type RequestMethod,
  type Server,
  type ServerCapabilities,
  type ServerContext,
  type ServerOptions,
} from '@modelcontextprotocol/server';
import {
  type AgentChannel,
  anonymousIdentity,
  describeError,
  type FrontTransport,
  type Identity,
  JsonRpcError,
  type ProtocolEra,
  type RequestContext,
  type RouteTarget,
  RpcCode,
  type RpcParams,
  type RpcResult,
  type SessionInfo,
} from '@portcullis/core';
import type { UpstreamConnection } from '@portcullis/upstream';
import { toWireError } from './errors.js';
import { createForward, type ForwardSession, peekTarget, relayableCapabilities, resolveTarget } from './forward.js';
import { GATEWAY_STATE_PREFIX, type Resume } from './interactions.js';
import type { GatewayInternals } from './internals.js';
import type { ScopeMember, SessionScope } from './scope.js';
import { rewriteOutboundParams } from './uris.js';

export interface SessionInit {
  readonly era: ProtocolEra;
  readonly frontTransport: FrontTransport;
  /** The id the front transport uses for this session; minted here when absent. */
  readonly sessionId?: string;
  readonly remoteAddress?: string;
  readonly identity?: Identity;
  /**
   * 2026-era HTTP requests carry no session: each one gets a short-lived session object, and
   * `per-session` upstream connections are keyed by this instead (one per identity).
   */
  readonly upstreamSessionKey?: string;
}

/**
 * One request as the session sees it, whoever carries it: the SDK server's handler context, or a
 * front that serves the request itself (`AgentSession.dispatch`).
 */
export interface AgentRequestIo {
  readonly id: string | number;
  /** Aborted when the agent gives the request up or the session closes. */
  readonly signal: AbortSignal;
  /** The 2026 `_meta` envelope keys the request carried (`io.modelcontextprotocol/*`). */
  readonly envelope: Readonly<Record<string, unknown>> | undefined;
  /** A notification related to this request. */
  notify(method: string, params: RpcParams): Promise<void>;
  /** A server-to-client request related to this request (2025 era only). */
  send(
    request: { method: AgentRequestMethod; params: RpcParams },
    options?: { signal?: AbortSignal },
  ): Promise<unknown>;
}

interface ActiveCall {
  readonly ctx: RequestContext;
  readonly connection: UpstreamConnection;
}

/**
 * One agent connection (or, in the 2026 era, one request): the SDK `Server` the front transport
 * drives, wired so that every request goes through the gateway pipeline.
 */
export class AgentSession implements ScopeMember {
  readonly id: string;
  readonly era: ProtocolEra;
  readonly frontTransport: FrontTransport;
  readonly remoteAddress: string | undefined;
  private identity: Identity;
  private readonly upstreamSessionKey: string;
  private readonly activeCalls = new Set<ActiveCall>();
  /** Resource subscriptions of a 2025-era agent; created by the first (most sessions have none). */
  private subscriptions: Map<string, RouteTarget> | undefined;
  /** Dedicated connections, the catalog view and relaying shared by every session of the same upstream session key. */
  private readonly scope: SessionScope;
  /** The terminal `forward` stage of this session, built on first use. */
  private forward: ((ctx: RequestContext) => Promise<RpcResult>) | undefined;
  private closed = false;
  private info: SessionInfo | undefined;
  /** 2026-era agents declare capabilities per request; the latest declaration seen. */
  private modernCapabilities: Record<string, unknown> | undefined;
  /** The level a 2025-era agent set with logging/setLevel. */
  private legacyLogLevel: string | undefined;
  /** Built on first use: a 2026-era request a front serves itself (`dispatch`) never needs one. */
  private sdk: McpServer | undefined;
  /** The agent's `clientInfo` from the envelope of a request served through `dispatch`. */
  private dispatchedClientInfo: { name: string; version: string } | undefined;
  /** Requests served through `dispatch` and still running: aborted when the session closes. */
  private readonly dispatched = new Set<AbortController>();

  constructor(
    private readonly gateway: GatewayInternals,
    init: SessionInit,
  ) {
    this.id = init.sessionId ?? randomUUID();
    this.era = init.era;
    this.frontTransport = init.frontTransport;
    this.remoteAddress = init.remoteAddress;
    this.identity = init.identity ?? anonymousIdentity();
    this.upstreamSessionKey = init.upstreamSessionKey ?? this.id;
    this.scope = gateway.scopeFor(this.upstreamSessionKey);
    this.scope.join(this);
  }

  /** The SDK `Server` a front transport drives. */
  get server(): Server {
    return this.product.server;
  }

  /**
   * The same server as the SDK's high-level product, for `createMcpHandler` (2026-era HTTP): the SDK
   * validates `Mcp-Param-*` headers only for an `McpServer`, asking it for the tool's input schema.
   */
  get product(): McpServer {
    if (this.sdk) return this.sdk;
    const gateway = this.gateway;
    const capabilities = gateway.capabilities();
    // Capabilities are registered on the inner Server, not passed to McpServer, so that McpServer
    // installs none of its own list/call handlers: every method goes through the pipeline.
    const product = new CatalogMcpServer(
      gateway.serverInfo,
      gateway.instructions() ? { instructions: gateway.instructions() } : {},
      (name) => this.toolInputSchema(name),
    );
    this.sdk = product;
    product.server.registerCapabilities(capabilities);
    this.registerHandlers(capabilities);
    product.server.onclose = () => {
      void this.close();
    };
    product.server.oninitialized = () => this.opened();
    return product;
  }

  /**
   * Serves one 2026-era request without an SDK server, for a front that has read and checked it
   * itself: `params` without the envelope keys, `io.envelope` with them; `abort` is the request's
   * (its signal becomes the request's signal) and is also aborted when the session closes. Resolves
   * with the result the agent receives (before the envelope stamping), or rejects with the wire error.
   */
  async dispatch(
    method: string,
    params: RpcParams,
    io: Omit<AgentRequestIo, 'signal'>,
    abort: AbortController,
  ): Promise<RpcResult> {
    const clientInfo = io.envelope?.[CLIENT_INFO_META_KEY];
    if (isImplementation(clientInfo)) this.dispatchedClientInfo = clientInfo;
    this.dispatched.add(abort);
    try {
      const requestIo: AgentRequestIo = {
        id: io.id,
        signal: abort.signal,
        envelope: io.envelope,
        notify: io.notify,
        send: io.send,
      };
      return await this.handle(method, params, requestIo);
    } finally {
      this.dispatched.delete(abort);
    }
  }

  /** The `initialize` handshake completed (2025 era): the observer sees the session and the exchange. */
  private opened(): void {
    const observer = this.gateway.observer;
    if (!observer?.sessionOpened) return;
    const protocolVersion = this.server.getNegotiatedProtocolVersion();
    observer.sessionOpened(this.sessionInfo(), this.identity, {
      request: {
        protocolVersion,
        capabilities: this.server.getClientCapabilities() ?? {},
        clientInfo: this.server.getClientVersion(),
      },
      result: {
        protocolVersion,
        capabilities: this.server.getCapabilities(),
        serverInfo: this.gateway.serverInfo,
      },
    });
  }

  /** Sends a server-to-client request to the agent, telling the observer what went out and what came back. */
  private async observedSendToAgent(
    method: string,
    params: RpcParams,
    send: (request: { method: AgentRequestMethod; params: RpcParams }) => Promise<unknown>,
  ): Promise<RpcResult> {
    const observer = this.gateway.observer;
    observer?.requested?.(this.id, method, params);
    try {
      const result = await sendToAgent(method, params, send);
      observer?.answered?.(this.id, method, { result });
      return result;
    } catch (error) {
      observer?.answered?.(this.id, method, { error: describeError(error) });
      throw error;
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get hasOwnStream(): boolean {
    return this.era === 'legacy' || this.frontTransport === 'stdio';
  }

  /**
   * Makes the session's tool list ready to be read synchronously (the SDK's `Mcp-Param-*` check runs
   * before dispatch and cannot wait); cheap when the list is already cached.
   */
  async prepareToolSchemas(): Promise<void> {
    await this.scope.catalog.list('tools');
  }

  /** The input schema of a tool as this session lists it; `undefined` when unknown or not listed yet. */
  private toolInputSchema(name: string): Record<string, unknown> | undefined {
    const schema = this.scope.catalog.peekName('tools', name)?.item.inputSchema;
    return typeof schema === 'object' && schema !== null && !Array.isArray(schema)
      ? (schema as Record<string, unknown>)
      : undefined;
  }

  /** The facts stages see; fixed once the agent has introduced itself. */
  sessionInfo(): SessionInfo {
    if (this.info) return this.info;
    const clientVersion = this.sdk?.server.getClientVersion() ?? this.dispatchedClientInfo;
    const info: SessionInfo = {
      id: this.id,
      era: this.era,
      protocolVersion:
        this.sdk?.server.getNegotiatedProtocolVersion() ?? (this.era === 'modern' ? '2026-07-28' : 'unknown'),
      frontTransport: this.frontTransport,
      clientInfo: clientVersion ? { name: clientVersion.name, version: clientVersion.version } : undefined,
      remoteAddress: this.remoteAddress,
    };
    if (clientVersion || this.era === 'modern') this.info = info;
    return info;
  }

  private registerHandlers(capabilities: ServerCapabilities): void {
    const methods: RequestMethod[] = [];
    if (capabilities.tools) methods.push('tools/list', 'tools/call');
    if (capabilities.prompts) methods.push('prompts/list', 'prompts/get');
    if (capabilities.resources) methods.push('resources/list', 'resources/templates/list', 'resources/read');
    if (capabilities.resources?.subscribe) methods.push('resources/subscribe', 'resources/unsubscribe');
    if (capabilities.completions) methods.push('completion/complete');
    if (capabilities.logging) methods.push('logging/setLevel');
    for (const method of methods) this.forwardMethod(method);
    this.server.setNotificationHandler('notifications/roots/list_changed', async () => {
      for (const connection of this.scope.dedicatedConnections()) {
        await connection.notify('notifications/roots/list_changed').catch(() => undefined);
      }
    });
  }

  private forwardMethod<M extends RequestMethod>(method: M): void {
    this.server.setRequestHandler(method, async (request, sdkContext) => {
      const params = withInputResponses((request.params ?? {}) as RpcParams, sdkContext);
      const result = await this.handle(method, params, sdkRequestIo(sdkContext), sdkContext);
      // The SDK validates what it sends; the result is an upstream's answer or the gateway's own list page.
      return result as unknown as HandlerResultTypeMap[M];
    });
  }

  /**
   * `sdkContext` is present when the SDK server carries the request; a request served through
   * `dispatch` never carries `requestState` (its front hands such retries to the SDK).
   */
  private async handle(
    method: string,
    agentParams: RpcParams,
    io: AgentRequestIo,
    sdkContext?: ServerContext,
  ): Promise<RpcResult> {
    // Closing the session closes its SDK server and aborts what `dispatch` runs: every request's signal.
    const signal = io.signal;
    try {
      let params = agentParams;
      let resume: Resume | undefined;
      // A retry answering an input_required round the gateway itself started (see UpstreamInteractions).
      if (
        this.era === 'modern' &&
        typeof params.requestState === 'string' &&
        params.requestState.startsWith(GATEWAY_STATE_PREFIX)
      ) {
        if (sdkContext === undefined) {
          throw new JsonRpcError(RpcCode.InvalidRequest, 'a retry carrying requestState needs the SDK path');
        }
        ({ params, resume } = await this.gateway.interactions.claimRetry(params, sdkContext));
      }
      const catalog = this.scope.catalog;
      const target = peekTarget(method, params, catalog) ?? (await resolveTarget(method, params, catalog));
      // Only the outbound filter makes notifications of this request asynchronous.
      const pending = this.gateway.outbound ? new Set<Promise<unknown>>() : undefined;
      const ctx: RequestContext = {
        session: this.sessionInfo(),
        identity: this.identity,
        method,
        params,
        requestId: io.id,
        target,
        signal,
        agent: this.filteredChannel(this.agentChannel(io), () => ctx, pending),
        receivedAt: Date.now(),
        beforeForward: [],
        annotations: new Map(),
      };
      if (resume) this.gateway.interactions.attach(ctx, resume);
      this.forward ??= createForward(this.gateway.forwardDeps, this.forwardSession);
      const result = await this.gateway.pipeline(ctx, this.forward);
      // Notifications of this request being redacted are sent before its response.
      if (pending !== undefined && pending.size > 0) await Promise.allSettled([...pending]);
      this.identity = ctx.identity;
      return result;
    } catch (error) {
      throw toWireError(error, this.gateway.logger);
    }
  }

  /**
   * The request's channel with what upstreams send redacted (`GatewayOptions.outbound`): every
   * notification and server-to-client request on it relates to this request. A notification the
   * filter refuses is dropped, a request refused (fail closed).
   */
  private filteredChannel(
    channel: AgentChannel,
    ctx: () => RequestContext,
    pending: Set<Promise<unknown>> | undefined,
  ): AgentChannel {
    const outbound = this.gateway.outbound;
    if (!outbound || pending === undefined) return channel;
    const filter = (method: string, params: RpcParams): Promise<RpcParams> => {
      const related = ctx();
      return outbound({ method, params, upstream: related.target?.upstream, related, identity: related.identity });
    };
    return {
      capabilities: channel.capabilities,
      logLevel: channel.logLevel,
      notify: (method, params) => {
        const sent = filter(method, params).then((filtered) => channel.notify(method, filtered));
        pending.add(sent);
        sent.finally(() => pending.delete(sent)).catch(() => undefined);
        return sent;
      },
      request: async (method, params, options) => channel.request(method, await filter(method, params), options),
    };
  }

  private agentChannel(io: AgentRequestIo): AgentChannel {
    const envelope = io.envelope;
    const declared =
      this.era === 'modern' ? envelope?.[CLIENT_CAPABILITIES_META_KEY] : this.server.getClientCapabilities();
    const capabilities = (declared ?? {}) as Record<string, unknown>;
    if (this.era === 'modern' && declared) this.modernCapabilities = capabilities;
    // A 2025-era agent receives logs unless it raised the level with logging/setLevel; a 2026-era
    // upstream only logs when the request asks for a level, so the session's level is asked for.
    const logLevel = this.era === 'modern' ? envelope?.[LOG_LEVEL_META_KEY] : (this.legacyLogLevel ?? 'debug');
    return {
      capabilities,
      logLevel: typeof logLevel === 'string' ? logLevel : undefined,
      notify: (method, params) => {
        this.gateway.observeNotification?.(this.id, method, params);
        return io.notify(method, params);
      },
      request: (method, params, options) =>
        this.observedSendToAgent(method, params, (request) => io.send(request, options)),
    };
  }

  private readonly forwardSession: ForwardSession = {
    catalog: () => this.scope.catalog,
    connection: (upstream) => this.connection(upstream),
    allConnections: () => {
      const primaries = this.gateway.provider
        .specs()
        .map((spec) => this.gateway.provider.primary(spec.name))
        .filter((connection): connection is UpstreamConnection => connection?.status === 'connected');
      const dedicated = this.scope.dedicatedConnections();
      return [...primaries, ...dedicated.filter((connection) => connection.status === 'connected')];
    },
    subscribe: async (target) => {
      this.subscriptions ??= new Map();
      if (this.subscriptions.has(target.namespacedName)) return;
      this.subscriptions.set(target.namespacedName, target);
      await this.gateway.subscriptions.add(target);
    },
    unsubscribe: async (target) => {
      if (!this.subscriptions?.delete(target.namespacedName)) return;
      await this.gateway.subscriptions.remove(target);
    },
    setLogLevel: (level) => {
      this.legacyLogLevel = level;
    },
    track: (connection, ctx) => {
      const call: ActiveCall = { ctx, connection };
      this.activeCalls.add(call);
      return () => this.activeCalls.delete(call);
    },
  };

  private connection(upstream: string): UpstreamConnection {
    // The scope, not this session, answers the connection's server requests: with 2026-era HTTP the
    // session that created the connection is gone after its one request.
    const scope = this.scope;
    const connection = this.gateway.provider.acquire(upstream, this.upstreamSessionKey, {
      capabilities: this.relayedCapabilities(),
      onServerRequest: (method, params, options) =>
        scope.relayServerRequest(upstream, connection, method, params, options),
    });
    if (connection !== this.gateway.provider.primary(upstream)) scope.adopt(upstream, connection);
    return connection;
  }

  private relayedCapabilities(): Record<string, unknown> {
    const declared = this.era === 'modern' ? this.modernCapabilities : this.server.getClientCapabilities();
    return relayableCapabilities((declared ?? {}) as Record<string, unknown>);
  }

  /** A request an upstream sends towards the agent: related to the call that caused it when there is one. */
  async relayServerRequest(
    upstream: string,
    connection: UpstreamConnection,
    method: string,
    params: RpcParams,
    options: { signal: AbortSignal },
  ): Promise<RpcResult> {
    if (this.era === 'modern') {
      // Pushes during a call reach the agent as input_required rounds (the scope hands them to
      // UpstreamInteractions first); outside any call a 2026-era agent has nothing to answer them on.
      throw new JsonRpcError(
        RpcCode.MethodNotFound,
        `${method} cannot be relayed: the agent speaks the 2026-07-28 protocol and has no call in flight here`,
      );
    }
    const outbound = rewriteOutboundParams(method, params, this.gateway.prefixOf(upstream));
    const call = this.activeCallOn(connection);
    if (call) return call.ctx.agent.request(method, outbound, options);
    const filtered = this.gateway.outbound
      ? await this.gateway.outbound({ method, params: outbound, upstream, related: undefined, identity: this.identity })
      : outbound;
    return this.observedSendToAgent(method, filtered, (request) => this.server.request(request, options));
  }

  /** A notification from `upstream` outside any call of this session, redacted for its identity. */
  async relayNotification(upstream: string, method: string, params: RpcParams): Promise<void> {
    let filtered = params;
    if (this.gateway.outbound) {
      try {
        filtered = await this.gateway.outbound({
          method,
          params,
          upstream,
          related: undefined,
          identity: this.identity,
        });
      } catch (error) {
        this.gateway.logger.warn({ session: this.id, method, err: describeError(error) }, 'notification withheld');
        return;
      }
    }
    await this.notify(method, filtered);
  }

  hasCallOn(connection: UpstreamConnection): boolean {
    return this.activeCallOn(connection) !== undefined;
  }

  private activeCallOn(connection: UpstreamConnection): ActiveCall | undefined {
    let found: ActiveCall | undefined;
    for (const call of this.activeCalls) if (call.connection === connection) found = call;
    return found;
  }

  /** Whether this session has a call in flight on `connection`, and if so delivers `method` related to it. */
  deliverDuringCall(connection: UpstreamConnection, method: string, params: RpcParams): boolean {
    const call = this.activeCallOn(connection);
    if (!call) return false;
    void call.ctx.agent.notify(method, params).catch(() => undefined);
    return true;
  }

  /** Sends a notification on the session's own stream; ignored once closed or before initialisation. */
  async notify(method: string, params?: RpcParams): Promise<void> {
    // A 2026-era stdio connection keeps one Server, whose notifications feed the agent's subscriptions/listen stream.
    if (this.closed || (this.era === 'modern' && this.frontTransport !== 'stdio')) return;
    try {
      this.gateway.observeNotification?.(this.id, method, params);
      await this.server.notification(params ? { method, params } : { method });
    } catch (error) {
      this.gateway.logger.debug({ session: this.id, method, err: describeError(error) }, 'notification not delivered');
    }
  }

  isSubscribed(uri: string): boolean {
    return this.subscriptions?.has(uri) ?? false;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Aborts the calls in flight first, so that no upstream call outlives the session.
    for (const abort of this.dispatched) abort.abort(new Error('the session closed'));
    if (this.sdk) await this.sdk.server.close().catch(() => undefined);
    this.gateway.sessionClosed(this);
    this.scope.leave(this);
    const subscriptions = this.subscriptions;
    if (subscriptions) {
      for (const target of subscriptions.values())
        await this.gateway.subscriptions.remove(target).catch(() => undefined);
      subscriptions.clear();
    }
    if (this.upstreamSessionKey === this.id) {
      this.gateway.releaseScope(this.id);
      await this.gateway.provider.releaseSession(this.id);
    }
  }
}

/** 2026-era retries carry `inputResponses` and `requestState`, which the SDK lifts out of params; the upstream needs them back. */
function withInputResponses(params: RpcParams, sdkContext: ServerContext): RpcParams {
  const inputResponses = sdkContext.mcpReq.inputResponses;
  const requestState = sdkContext.mcpReq.requestState<unknown>();
  if (inputResponses === undefined && requestState === undefined) return params;
  return {
    ...params,
    ...(inputResponses !== undefined ? { inputResponses } : {}),
    ...(requestState !== undefined ? { requestState } : {}),
  };
}

/** The request io of a request the SDK server carries. */
function sdkRequestIo(sdkContext: ServerContext): AgentRequestIo {
  return {
    id: sdkContext.mcpReq.id,
    signal: sdkContext.mcpReq.signal,
    // The SDK types the envelope as an empty object; its keys are the reserved `io.modelcontextprotocol/*` names.
    envelope: sdkContext.mcpReq.envelope as Readonly<Record<string, unknown>> | undefined,
    notify: (method, params) => sdkContext.mcpReq.notify({ method, params }),
    send: (request, options) => sdkContext.mcpReq.send(request, options),
  };
}

function isImplementation(value: unknown): value is { name: string; version: string } {
  if (typeof value !== 'object' || value === null) return false;
  const { name, version } = value as { name?: unknown; version?: unknown };
  return typeof name === 'string' && typeof version === 'string';
}

type AgentRequestMethod = 'sampling/createMessage' | 'elicitation/create' | 'roots/list';
const AGENT_REQUEST_METHODS: ReadonlySet<string> = new Set<AgentRequestMethod>([
  'sampling/createMessage',
  'elicitation/create',
  'roots/list',
]);

/** Sends one of the server-to-client requests an upstream may make; anything else is refused. */
async function sendToAgent(
  method: string,
  params: RpcParams,
  send: (request: { method: AgentRequestMethod; params: RpcParams }) => Promise<unknown>,
): Promise<RpcResult> {
  if (!AGENT_REQUEST_METHODS.has(method)) {
    throw new JsonRpcError(RpcCode.MethodNotFound, `The gateway does not relay ${method} to agents`);
  }
  const result = await send({ method: method as AgentRequestMethod, params });
  return result as RpcResult;
}

/**
 * An `McpServer` with no tools of its own whose tool input schemas are the gateway catalog's: the
 * SDK's HTTP entry reads them (`toolInputSchemaJson`, marked internal in SDK 2.4) to validate the
 * `Mcp-Param-*` headers a client mirrors from `x-mcp-header` arguments, answering -32020 itself.
 */
class CatalogMcpServer extends McpServer {
  constructor(
    serverInfo: Implementation,
    options: ServerOptions,
    private readonly schemaOf: (name: string) => Record<string, unknown> | undefined,
  ) {
    super(serverInfo, options);
  }

  override toolInputSchemaJson(name: string): Record<string, unknown> | undefined {
    return this.schemaOf(name);
  }
}
