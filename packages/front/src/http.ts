import { randomUUID } from 'node:crypto';
import { createServer, type Server as HttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { toNodeHandler, toWebRequest } from '@modelcontextprotocol/node';
import {
  type AuthInfo,
  createMcpHandler,
  isInitializeRequest,
  isLegacyRequest,
  PROTOCOL_VERSION_META_KEY,
} from '@modelcontextprotocol/server';
import { SSEServerTransport } from '@modelcontextprotocol/server-legacy/sse';
import type { Config } from '@portcullis/config';
import { anonymousIdentity, describeError, type Identity, RpcCode } from '@portcullis/core';
import type { AgentSession, Gateway } from '@portcullis/gateway';
import type { Logger } from 'pino';
import { ADMIN_PREFIX, type AdminApi, handleAdminRequest } from './admin.js';
import { BoundedEventStore } from './event-store.js';
import { isAllowedHost, isAllowedOrigin } from './guards.js';
import { header, readChunks } from './http-util.js';
import { modernSessionKey, serveModernToolCall } from './modern-call.js';
import { NodeSessionTransport } from './session-transport.js';

/**
 * Who sent an MCP request (`/mcp`, `/sse`, `/messages`): an identity, or `undefined` to refuse it
 * with 401. Provided by the application (the front knows no credentials and no policy). It may throw
 * when it cannot decide (its store is down): the request is answered 503.
 */
export type HttpAuthenticator = (request: IncomingMessage) => Identity | undefined | Promise<Identity | undefined>;

export interface HttpFrontOptions {
  readonly server: Config['server'];
  readonly logger: Logger;
  /**
   * Authenticates every MCP request (each request of a session too, so a revoked credential stops
   * working mid-session). Takes precedence over `anonymous`.
   */
  readonly authenticate?: HttpAuthenticator;
  /**
   * Without `authenticate`: whether MCP requests are served as the anonymous identity (`false`: each
   * is refused with 401). Default `true` for library users.
   */
  readonly anonymous?: boolean;
  /**
   * The admin API under `/admin/v1/` (absent: 404). Always authenticated with `authenticate`; the
   * anonymous identity is refused there.
   */
  readonly admin?: AdminApi;
  /**
   * Whether plain 2026-era `tools/call` requests are served without the SDK's per-request handler
   * (`serveModernToolCall`). Default `true`; `false` sends every 2026-era request through the SDK
   * (tests compare the two).
   */
  readonly modernFastPath?: boolean;
}

export interface HttpFront {
  /** The bound address, e.g. `http://127.0.0.1:8080`. */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

interface LegacySession {
  readonly transport: NodeSessionTransport;
  readonly session: AgentSession;
  readonly activity: SessionActivity;
  /** Who opened it: later requests must come from the same identity. */
  readonly identity: Identity;
}

/** When a session was last used and how many of its streams are open: what idle expiry looks at. */
interface SessionActivity {
  lastSeen: number;
  openStreams: number;
}

/** Marks a session used now, and counts `res` as an open stream until it closes when `streaming`. */
function touch(activity: SessionActivity, res: ServerResponse, streaming: boolean): void {
  activity.lastSeen = Date.now();
  if (!streaming) return;
  activity.openStreams++;
  res.once('close', () => {
    activity.openStreams--;
    activity.lastSeen = Date.now();
  });
}

interface SseSession {
  readonly transport: SSEServerTransport;
  readonly session: AgentSession;
  readonly identity: Identity;
}

/** Same subject and authentication method: requests of one session must come from whoever opened it. */
function sameIdentity(a: Identity, b: Identity): boolean {
  return a.subject === b.subject && a.authMethod === b.authMethod;
}

/**
 * HTTP front: Streamable HTTP at `/mcp` for both eras on one endpoint (2025-era requests go to a
 * sessionful transport per `Mcp-Session-Id`; 2026-era requests to the SDK's per-request handler),
 * the deprecated HTTP+SSE transport at `/sse` + `/messages`, and `/healthz`, `/readyz`.
 */
export async function serveGatewayOverHttp(gateway: Gateway, options: HttpFrontOptions): Promise<HttpFront> {
  const { logger } = options;
  const limits = options.server;
  const legacySessions = new Map<string, LegacySession>();
  const sseSessions = new Map<string, SseSession>();
  const authenticate: HttpAuthenticator =
    options.authenticate ?? (() => (options.anonymous === false ? undefined : anonymousIdentity()));
  const modern = createMcpHandler(
    async ({ era, requestInfo, authInfo }) => {
      const request = authInfo?.extra?.[MODERN_REQUEST];
      if (!isModernRequest(request)) throw new Error('2026-era request served without an identity');
      const { identity } = request;
      const session = gateway.createSession({
        era,
        frontTransport: 'streamable-http',
        identity,
        upstreamSessionKey: modernSessionKey(identity),
      });
      request.session = session;
      // The SDK checks Mcp-Param-* headers against the called tool's schema before dispatch.
      if (requestInfo?.headers.get('mcp-method') === 'tools/call') await session.prepareToolSchemas();
      return session.product;
    },
    {
      legacy: 'reject',
      maxRequestBodySize: limits.maxMessageBytes,
      onerror: (error) => logger.debug({ err: error.message }, 'mcp handler'),
    },
  );
  const modernNode = toNodeHandler(modern, { maxRequestBodySize: limits.maxMessageBytes });
  const stopEvents = gateway.onEvents({
    listChanged: (kind) => {
      if (kind === 'tools') modern.notify.toolsChanged();
      else if (kind === 'prompts') modern.notify.promptsChanged();
      else modern.notify.resourcesChanged();
    },
    resourceUpdated: (uri) => modern.notify.resourceUpdated(uri),
  });

  const handleMcp = async (req: IncomingMessage, res: ServerResponse, identity: Identity): Promise<void> => {
    const sessionId = header(req, 'mcp-session-id');
    const body = req.method === 'POST' ? await readJsonBody(req, res, limits.maxMessageBytes) : undefined;
    if (body === BODY_REJECTED) return;
    if (sessionId !== undefined) {
      const existing = legacySessions.get(sessionId);
      if (!existing) {
        sendJsonRpcError(res, 404, RpcCode.InvalidRequest, 'Session not found: start a new session', null);
        return;
      }
      if (!sameIdentity(existing.identity, identity)) {
        sendJsonRpcError(res, 403, RpcCode.InvalidRequest, 'Forbidden: the session belongs to another identity', null);
        return;
      }
      touch(existing.activity, res, req.method === 'GET');
      gateway.observeInbound(sessionId, body);
      await existing.transport.handleRequest(req, res, body);
      return;
    }
    if (req.method === 'POST' && !claimsModernEra(body) && (await isLegacyRequest(await toWebRequest(req, body)))) {
      if (!isInitializeRequest(body)) {
        sendJsonRpcError(res, 400, RpcCode.InvalidRequest, 'Bad Request: Mcp-Session-Id header is required', null);
        return;
      }
      const id = randomUUID();
      const session = gateway.createSession({
        era: 'legacy',
        frontTransport: 'streamable-http',
        sessionId: id,
        identity,
        remoteAddress: req.socket.remoteAddress,
      });
      const transport = new NodeSessionTransport(id, new BoundedEventStore(), () => {
        legacySessions.set(id, {
          transport,
          session,
          activity: { lastSeen: Date.now(), openStreams: 0 },
          identity,
        });
      });
      transport.onclose = () => {
        legacySessions.delete(id);
        void session.close();
      };
      await session.server.connect(transport);
      await transport.handleRequest(req, res, body);
      return;
    }
    if (req.method === 'GET' || req.method === 'DELETE') {
      sendJsonRpcError(res, 400, RpcCode.InvalidRequest, 'Bad Request: Mcp-Session-Id header is required', null);
      return;
    }
    if (options.modernFastPath !== false && (await serveModernToolCall(gateway, identity, req, res, body))) return;
    // The SDK serves subscriptions/listen without a hook revealing its filter; the gateway reads the
    // resource URIs off the request to subscribe upstream for as long as the stream stays open.
    const stopListening = gateway.listenFor(body);
    if (stopListening) res.once('close', stopListening);
    const request: ModernRequest = { identity };
    // The SDK closes the server of an exchange it served, but not one it refused after the factory
    // ran (a Mcp-Param-* mismatch) nor the one behind a subscriptions/listen stream.
    res.once('close', () => void request.session?.close());
    // The SDK's node adapter hands `req.auth` to the factory as `authInfo`: the request travels
    // there (an AsyncLocalStorage would tax every promise of the process). It holds no credential.
    (req as IncomingMessage & { auth?: AuthInfo }).auth = {
      token: '',
      clientId: identity.subject,
      scopes: [],
      extra: { [MODERN_REQUEST]: request },
    };
    await modernNode(req, res, body);
  };

  const handleSseOpen = async (req: IncomingMessage, res: ServerResponse, identity: Identity): Promise<void> => {
    const transport = new SSEServerTransport('/messages', res);
    const session = gateway.createSession({
      era: 'legacy',
      frontTransport: 'sse',
      sessionId: transport.sessionId,
      identity,
      remoteAddress: req.socket.remoteAddress,
    });
    sseSessions.set(transport.sessionId, { transport, session, identity });
    transport.onclose = () => {
      sseSessions.delete(transport.sessionId);
      void session.close();
    };
    await session.server.connect(transport);
  };

  const handleSseMessage = async (
    req: IncomingMessage,
    res: ServerResponse,
    url: URL,
    identity: Identity,
  ): Promise<void> => {
    const id = url.searchParams.get('sessionId');
    const entry = id ? sseSessions.get(id) : undefined;
    if (!entry) {
      sendJsonRpcError(res, 404, RpcCode.InvalidRequest, 'Session not found', null);
      return;
    }
    if (!sameIdentity(entry.identity, identity)) {
      sendJsonRpcError(res, 403, RpcCode.InvalidRequest, 'Forbidden: the session belongs to another identity', null);
      return;
    }
    const body = await readJsonBody(req, res, limits.maxMessageBytes);
    if (body === BODY_REJECTED) return;
    gateway.observeInbound(entry.session.id, body);
    await entry.transport.handlePostMessage(req, res, body);
  };

  const server: HttpServer = createServer((req, res) => {
    const url = req.url === '/mcp' ? MCP_URL : new URL(req.url ?? '/', 'http://localhost');
    if (!isAllowedHost(header(req, 'host'), limits.allowedHosts)) {
      sendJsonRpcError(res, 403, RpcCode.InvalidRequest, 'Forbidden: Host header not allowed', null);
      return;
    }
    const origin = header(req, 'origin');
    if (origin !== undefined && !isAllowedOrigin(origin, limits.allowedOrigins)) {
      sendJsonRpcError(res, 403, RpcCode.InvalidRequest, 'Forbidden: Origin not allowed', null);
      return;
    }
    const route = async (): Promise<void> => {
      if (options.admin !== undefined && url.pathname.startsWith(ADMIN_PREFIX)) {
        return handleAdminRequest(req, res, url, {
          api: options.admin,
          authenticate,
          logger,
          maxBodyBytes: limits.maxMessageBytes,
        });
      }
      const mcpPath = url.pathname === '/mcp' || url.pathname === '/sse' || url.pathname === '/messages';
      let identity: Identity | undefined;
      if (mcpPath) {
        try {
          const authenticated = authenticate(req);
          // A synchronous authenticator's answer is used as it is, without waiting a turn for it.
          identity = isThenable(authenticated) ? await authenticated : authenticated;
        } catch (error) {
          logger.error({ err: describeError(error), path: url.pathname }, 'cannot authenticate the request');
          req.resume();
          return sendJsonRpcError(
            res,
            503,
            RpcCode.InternalError,
            'Service unavailable: cannot verify credentials',
            null,
          );
        }
        if (identity === undefined) {
          req.resume();
          return unauthorized(res, header(req, 'authorization') !== undefined);
        }
      }
      switch (url.pathname) {
        case '/mcp':
          // Awaited rather than returned: an async function returning a promise takes two more turns.
          await handleMcp(req, res, identity ?? anonymousIdentity());
          return;
        case '/sse':
          if (req.method !== 'GET') return methodNotAllowed(res, 'GET');
          return handleSseOpen(req, res, identity ?? anonymousIdentity());
        case '/messages':
          if (req.method !== 'POST') return methodNotAllowed(res, 'POST');
          return handleSseMessage(req, res, url, identity ?? anonymousIdentity());
        case '/healthz':
          return sendJson(res, 200, { status: 'ok', sessions: gateway.sessionCount, upstreams: gateway.health() });
        case '/readyz': {
          const ready = gateway.isReady();
          return sendJson(res, ready ? 200 : 503, { ready, upstreams: gateway.health() });
        }
        default:
          return sendJson(res, 404, { error: 'not found' });
      }
    };
    route().catch((error: unknown) => {
      logger.error({ err: describeError(error), path: url.pathname }, 'HTTP request failed');
      if (!res.headersSent) sendJsonRpcError(res, 500, RpcCode.InternalError, 'Internal error', null);
      else res.end();
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(limits.port, limits.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;

  const idleTimeout = limits.sessionIdleTimeoutMs;
  const sweeper =
    idleTimeout > 0
      ? setInterval(
          () => {
            const cutoff = Date.now() - idleTimeout;
            for (const [id, entry] of legacySessions) {
              if (entry.activity.openStreams > 0 || entry.activity.lastSeen > cutoff) continue;
              logger.info({ session: id, idleMs: idleTimeout }, 'closing an idle session');
              void entry.transport.close();
            }
          },
          Math.min(60_000, Math.max(1_000, Math.floor(idleTimeout / 2))),
        ).unref()
      : undefined;

  return {
    url: `http://${host}:${address.port}`,
    port: address.port,
    close: async () => {
      if (sweeper) clearInterval(sweeper);
      stopEvents();
      await Promise.allSettled([...legacySessions.values()].map((entry) => entry.transport.close()));
      await Promise.allSettled([...sseSessions.values()].map((entry) => entry.transport.close()));
      await modern.close().catch(() => undefined);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const BODY_REJECTED = Symbol('body rejected');

/**
 * The URL of every request whose target is exactly `/mcp`, parsed once. Shared by those requests:
 * only its `pathname` is read for them (admin and `/messages` requests, whose handlers read more,
 * get their own).
 */
const MCP_URL = new URL('/mcp', 'http://localhost');

function isThenable<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function';
}

/** The 2026-era request the SDK's per-request factory serves: its identity, and the session made for it. */
interface ModernRequest {
  readonly identity: Identity;
  session?: AgentSession;
}

const MODERN_REQUEST = 'portcullis/request';

function isModernRequest(value: unknown): value is ModernRequest {
  return typeof value === 'object' && value !== null && 'identity' in value;
}

/**
 * Whether a request carries the 2026 envelope's protocol-version claim in `params._meta`: the SDK
 * routes every such request to the modern path (`isLegacyRequest` is false for it), so the web
 * request its predicate needs is not built for the common case.
 */
function claimsModernEra(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const params = (body as { params?: unknown }).params;
  if (typeof params !== 'object' || params === null) return false;
  const meta = (params as { _meta?: unknown })._meta;
  return typeof meta === 'object' && meta !== null && PROTOCOL_VERSION_META_KEY in meta;
}

/** Reads and parses a JSON body up to `limit` bytes; answers the request itself when it cannot. */
async function readJsonBody(
  req: IncomingMessage,
  res: ServerResponse,
  limit: number,
): Promise<unknown | typeof BODY_REJECTED> {
  const declared = Number(header(req, 'content-length') ?? Number.NaN);
  if (declared > limit) {
    req.resume();
    sendJsonRpcError(res, 413, RpcCode.MessageTooLarge, `Message exceeds the size limit of ${limit} bytes`, null);
    return BODY_REJECTED;
  }
  const { chunks, tooLarge } = await readChunks(req, limit);
  if (tooLarge) {
    sendJsonRpcError(res, 413, RpcCode.MessageTooLarge, `Message exceeds the size limit of ${limit} bytes`, null);
    return BODY_REJECTED;
  }
  const text = (chunks.length === 1 && chunks[0] !== undefined ? chunks[0] : Buffer.concat(chunks)).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    if (text.trim() === '') return undefined;
    sendJsonRpcError(res, 400, RpcCode.ParseError, 'Parse error: the body is not valid JSON', null);
    return BODY_REJECTED;
  }
}

/** 401: the credential presented is not accepted, or none was and anonymous access is off. */
function unauthorized(res: ServerResponse, presented: boolean): void {
  res.setHeader(
    'www-authenticate',
    presented ? 'Bearer realm="portcullis", error="invalid_token"' : 'Bearer realm="portcullis"',
  );
  sendJsonRpcError(
    res,
    401,
    RpcCode.InvalidRequest,
    presented
      ? 'Unauthorized: the bearer token is not a valid API key of this gateway (unknown or revoked)'
      : 'Unauthorized: an API key is required (Authorization: Bearer <key>); anonymous access is disabled (auth.anonymous: false)',
    null,
  );
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendJsonRpcError(
  res: ServerResponse,
  status: number,
  code: number,
  message: string,
  id: string | number | null,
): void {
  sendJson(res, status, { jsonrpc: '2.0', id, error: { code, message } });
}

function methodNotAllowed(res: ServerResponse, allow: string): void {
  res.writeHead(405, { allow, 'content-type': 'application/json' });
  res.end(JSON.stringify({ error: 'method not allowed' }));
}
