import { CLIENT_CAPABILITIES_META_KEY, LOG_LEVEL_META_KEY } from '@modelcontextprotocol/server';
import {
  JsonRpcError,
  type RequestContext,
  type RouteTarget,
  RpcCode,
  type RpcParams,
  type RpcResult,
  unknownTargetError,
} from '@portcullis/core';
import type { UpstreamConnection, UpstreamRequestOptions } from '@portcullis/upstream';
import type { Catalog, CatalogItem, CatalogView, ListKind } from './catalog.js';
import type { CursorCodec } from './cursor.js';
import type { ListFilter } from './hooks.js';
import type { UpstreamInteractions } from './interactions.js';
import { mcpParamHeaders } from './param-headers.js';
import { rewriteResultUris } from './uris.js';

/** The list methods the gateway answers from its merged catalog. */
export const LIST_METHODS: Readonly<Record<string, ListKind>> = {
  'tools/list': 'tools',
  'prompts/list': 'prompts',
  'resources/list': 'resources',
  'resources/templates/list': 'resourceTemplates',
};

/** Everything `forward` needs from the session that received the request. */
export interface ForwardSession {
  /** The catalog view this session lists and routes by (the shared catalog, or its own overlay). */
  catalog(): CatalogView;
  /** The connection to `upstream` serving this session (shared or dedicated). */
  connection(upstream: string): UpstreamConnection;
  /** Connections this session has towards every connected upstream (for fan-out such as setLevel). */
  allConnections(): UpstreamConnection[];
  subscribe(target: RouteTarget): Promise<void>;
  unsubscribe(target: RouteTarget): Promise<void>;
  /** Remembers the level a 2025-era agent set, for upstreams that take it per request. */
  setLogLevel(level: string): void;
  /** Tracks a call in flight on a connection, so that what the upstream sends meanwhile reaches this request. */
  track(connection: UpstreamConnection, ctx: RequestContext): () => void;
}

export interface ForwardDeps {
  /** Turns a 2025-era upstream's pushes during a 2026-era agent's call into input_required rounds. */
  readonly interactions?: UpstreamInteractions;
  readonly catalog: Catalog;
  readonly cursors: CursorCodec;
  readonly pageSize: number;
  readonly prefixOf: (upstream: string) => string | undefined;
  /** Items a request's list leaves out (policy `hide`), filtered before paging. */
  readonly listFilter?: ListFilter | undefined;
}

/** Resolves where a request goes before the pipeline runs; `undefined` when nothing matches. */
export async function resolveTarget(
  method: string,
  params: RpcParams,
  catalog: CatalogView,
): Promise<RouteTarget | undefined> {
  switch (method) {
    case 'tools/call':
    case 'prompts/get': {
      if (typeof params.name !== 'string') return undefined;
      const item = await catalog.resolveName(method === 'tools/call' ? 'tools' : 'prompts', params.name);
      return item ? toTarget(item) : undefined;
    }
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe': {
      if (typeof params.uri !== 'string') return undefined;
      const owner = await catalog.resolveUri(params.uri);
      return owner ? { upstream: owner.upstream, originalName: owner.original, namespacedName: params.uri } : undefined;
    }
    case 'completion/complete': {
      const ref = params.ref;
      if (!isRecord(ref)) return undefined;
      if (ref.type === 'ref/prompt' && typeof ref.name === 'string') {
        const item = await catalog.resolveName('prompts', ref.name);
        return item ? toTarget(item) : undefined;
      }
      if (ref.type === 'ref/resource' && typeof ref.uri === 'string') {
        const owner = await catalog.resolveUri(ref.uri);
        return owner ? { upstream: owner.upstream, originalName: owner.original, namespacedName: ref.uri } : undefined;
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * `resolveTarget` from what the view has already merged, without waiting: the same target for a
 * tool or prompt found in the current merge; `undefined` otherwise (the caller then resolves).
 */
export function peekTarget(method: string, params: RpcParams, catalog: CatalogView): RouteTarget | undefined {
  if ((method !== 'tools/call' && method !== 'prompts/get') || typeof params.name !== 'string') return undefined;
  const item = catalog.peekName(method === 'tools/call' ? 'tools' : 'prompts', params.name);
  return item ? toTarget(item) : undefined;
}

function toTarget(item: CatalogItem): RouteTarget {
  return { upstream: item.upstream, originalName: item.original, namespacedName: item.exposed };
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Keys of a request's `_meta` that belong to the hop between agent and gateway: the 2026
 * envelope (`io.modelcontextprotocol/…`) and the agent's progress token. The upstream client
 * writes its own.
 */
function forwardableMeta(meta: unknown): Record<string, unknown> | undefined {
  if (!isRecord(meta)) return undefined;
  let kept: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(meta)) {
    if (key === 'progressToken' || key.startsWith('io.modelcontextprotocol/')) continue;
    kept ??= {};
    kept[key] = value;
  }
  return kept;
}

/** An upstream's result without the 2026 envelope keys of its own hop (the front adds the gateway's). */
function withoutHopMeta(result: RpcResult): RpcResult {
  if (!isRecord(result._meta)) return result;
  const { _meta, ...rest } = result;
  const meta = forwardableMeta(_meta);
  // `rest` is a fresh plain copy without `_meta`: assigning appends it (see `upstreamParams`).
  if (meta) rest._meta = meta;
  return rest;
}

/** Client capabilities an upstream may see: only those whose requests the gateway relays back to the agent. */
const RELAYED_CLIENT_CAPABILITIES = ['sampling', 'elicitation', 'roots'] as const;

export function relayableCapabilities(declared: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const relayed: Record<string, unknown> = {};
  for (const key of RELAYED_CLIENT_CAPABILITIES) if (declared[key]) relayed[key] = declared[key];
  return relayed;
}

/**
 * Params as the upstream receives them. Towards a 2026-era upstream the request's envelope carries
 * this agent's own capabilities (what the upstream may ask of it through `input_required`) and its
 * requested log level; the SDK lets these per-request keys take precedence over the connection's.
 */
function upstreamParams(ctx: RequestContext, connection: UpstreamConnection, overrides: RpcParams): RpcParams {
  const agentParams = ctx.params;
  // Without a `_meta` of its own the params are copied as they are (the common case; the rest
  // pattern below takes a slow path in V8).
  let meta: Record<string, unknown> | undefined;
  let rest: RpcParams = agentParams;
  if (Object.hasOwn(agentParams, '_meta')) {
    const { _meta, ...others } = agentParams;
    meta = forwardableMeta(_meta);
    rest = others;
  }
  if (connection.era === 'modern') {
    // `meta` is this call's own copy, and holds no `io.modelcontextprotocol/` key yet.
    meta ??= {};
    meta[CLIENT_CAPABILITIES_META_KEY] = relayableCapabilities(ctx.agent.capabilities);
    if (ctx.agent.logLevel !== undefined) meta[LOG_LEVEL_META_KEY] = ctx.agent.logLevel;
  }
  const params: RpcParams = { ...rest, ...overrides };
  // Neither `rest` nor `overrides` holds `_meta`: it goes last, as a data property of the fresh copy.
  if (meta) params._meta = meta;
  return params;
}

/**
 * The terminal `forward` handler: answers list methods from the catalog and routes the rest. A
 * plain function returning the routed call's promise (not an async wrapper around it), so a call
 * costs no extra promise; whatever fails is a rejection.
 */
export function createForward(deps: ForwardDeps, session: ForwardSession): (ctx: RequestContext) => Promise<RpcResult> {
  return (ctx) => {
    const listKind = LIST_METHODS[ctx.method];
    if (listKind) return listPage(deps, session.catalog(), listKind, ctx.params, ctx);
    if (ctx.method === 'logging/setLevel') return setLevel(session, ctx);
    const target = ctx.target;
    if (!target) return Promise.reject(unknownTargetError(ctx.method, ctx.params));
    switch (ctx.method) {
      case 'resources/subscribe':
        return session.subscribe(target).then(() => ({}));
      case 'resources/unsubscribe':
        return session.unsubscribe(target).then(() => ({}));
      default:
        return routed(deps, session, ctx, target);
    }
  };
}

async function setLevel(session: ForwardSession, ctx: RequestContext): Promise<RpcResult> {
  if (typeof ctx.params.level === 'string') session.setLogLevel(ctx.params.level);
  await Promise.allSettled(
    session
      .allConnections()
      .filter((connection) => connection.era === 'legacy' && connection.serverCapabilities?.logging)
      .map((connection) => connection.request('logging/setLevel', { level: ctx.params.level })),
  );
  return {};
}

/**
 * How far a response is kept behind the last progress notification relayed for it. Only calls that
 * reported progress wait, at most this long; 1 ms lost ~5% of last notifications on an idle machine.
 */
const PROGRESS_SETTLE_MS = 20;

async function routed(
  deps: ForwardDeps,
  session: ForwardSession,
  ctx: RequestContext,
  target: RouteTarget,
): Promise<RpcResult> {
  const connection = session.connection(target.upstream);
  // `ready()` resolves at once for a connected upstream; awaiting it then only costs a turn.
  if (connection.status !== 'connected') await connection.ready();
  const params = upstreamParams(ctx, connection, originalNameParams(ctx, target));
  const progressToken = isRecord(ctx.params._meta) ? ctx.params._meta.progressToken : undefined;
  // Progress relayed while the call runs; the result waits for it so that it never overtakes the
  // last notification (agents drop progress that arrives after the response).
  const relayed: Promise<unknown>[] = [];
  let lastProgressAt = 0;
  const onProgress =
    typeof progressToken === 'string' || typeof progressToken === 'number'
      ? (progress: { progress: number; total?: number; message?: string }) => {
          lastProgressAt = Date.now();
          relayed.push(
            ctx.agent.notify('notifications/progress', { ...progress, progressToken }).catch(() => undefined),
          );
        }
      : undefined;
  // A 2026-era HTTP upstream expects the Mcp-Param-* headers its tool schema declares.
  const headers =
    ctx.method === 'tools/call' && connection.era === 'modern' && connection.spec.transport === 'streamable-http'
      ? mcpParamHeaders(session.catalog().peekName('tools', target.namespacedName)?.item.inputSchema, params.arguments)
      : undefined;
  const untrack = session.track(connection, ctx);
  try {
    const managed = deps.interactions?.route(ctx, connection, target.upstream, (options) =>
      connection.request(ctx.method, params, options),
    );
    let result: RpcResult;
    if (managed) result = await managed;
    else {
      const options: { -readonly [K in keyof UpstreamRequestOptions]: UpstreamRequestOptions[K] } = {
        signal: ctx.signal,
      };
      if (onProgress) options.onProgress = onProgress;
      if (headers) options.headers = headers;
      result = await connection.request(ctx.method, params, options);
    }
    if (relayed.length > 0) await Promise.all(relayed);
    // The official SDK clients drop a progress notification they read in the same chunk as the
    // response (notifications dispatch on a microtask, responses at once), so the response keeps a
    // few milliseconds' distance from the last relayed progress.
    const settleMs = lastProgressAt + PROGRESS_SETTLE_MS - Date.now();
    if (relayed.length > 0 && settleMs > 0) await new Promise((resolve) => setTimeout(resolve, settleMs));
    return rewriteResultUris(ctx.method, withoutHopMeta(result), deps.prefixOf(target.upstream));
  } finally {
    untrack();
  }
}

function originalNameParams(ctx: RequestContext, target: RouteTarget): RpcParams {
  switch (ctx.method) {
    case 'tools/call':
    case 'prompts/get':
      return { name: target.originalName };
    case 'resources/read':
      return { uri: target.originalName };
    case 'completion/complete': {
      const ref = isRecord(ctx.params.ref) ? ctx.params.ref : {};
      return ref.type === 'ref/prompt'
        ? { ref: { ...ref, name: target.originalName } }
        : { ref: { ...ref, uri: target.originalName } };
    }
    default:
      return {};
  }
}

async function listPage(
  deps: ForwardDeps,
  view: CatalogView,
  kind: ListKind,
  params: RpcParams,
  ctx: RequestContext,
): Promise<RpcResult> {
  const listed = await view.list(kind);
  const filter = deps.listFilter;
  const items = filter ? listed.filter((item) => filter(ctx, kind, item)) : listed;
  const version = view.version;
  const offset = typeof params.cursor === 'string' ? deps.cursors.read(params.cursor, kind, version) : 0;
  if (typeof params.cursor !== 'undefined' && typeof params.cursor !== 'string') {
    throw new JsonRpcError(RpcCode.InvalidParams, 'Invalid cursor: must be a string');
  }
  const end = offset + deps.pageSize;
  const page = items.slice(offset, end).map((entry) => entry.item);
  const key = kind === 'resourceTemplates' ? 'resourceTemplates' : kind;
  return end < items.length ? { [key]: page, nextCursor: deps.cursors.mint(kind, version, end) } : { [key]: page };
}
