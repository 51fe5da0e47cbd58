import type { Identity } from './identity.js';

/**
 * The interception seam. Every agent request passes these stages, outermost first:
 *
 *   identify ⊃ record ⊃ authorize ⊃ hold ⊃ transform ⊃ forward
 *
 * A stage is a hono-style middleware: it may act before calling `next()`, after it, or answer
 * without calling it (a denial). `record` wraps the decision stages so it sees denials as well as
 * the transformed result the agent receives; it commits write-ahead records through
 * `ctx.beforeForward`, which `forward` drains before anything leaves for an upstream.
 */
export const STAGE_ORDER = ['identify', 'record', 'authorize', 'hold', 'transform', 'forward'] as const;
export type StageName = (typeof STAGE_ORDER)[number];

export type ProtocolEra = 'legacy' | 'modern';
export type FrontTransport = 'stdio' | 'streamable-http' | 'sse';

/** A JSON-RPC result object as it travels through the pipeline. */
export type RpcResult = Record<string, unknown>;
export type RpcParams = Record<string, unknown>;

/** Facts about the agent session a request belongs to; fixed for the session's life. */
export interface SessionInfo {
  /** Gateway-minted id: the `Mcp-Session-Id` for sessionful transports, a fresh id per request in the 2026 era. */
  readonly id: string;
  readonly era: ProtocolEra;
  readonly protocolVersion: string;
  readonly frontTransport: FrontTransport;
  readonly clientInfo: { readonly name: string; readonly version: string } | undefined;
  readonly remoteAddress: string | undefined;
}

/** Where a request is routed. Absent for methods the gateway answers itself (lists, ping). */
export interface RouteTarget {
  readonly upstream: string;
  /** The name or URI as the upstream knows it. */
  readonly originalName: string;
  /** The name or URI as the agent sees it. */
  readonly namespacedName: string;
}

/** The way back to the agent for the duration of one request. */
export interface AgentChannel {
  /** Capabilities the agent declared (initialize in the 2025 era, the request envelope in 2026). */
  readonly capabilities: Readonly<Record<string, unknown>>;
  /** The log level a 2026-era agent asked for in this request's envelope (absent: no logs). */
  readonly logLevel: string | undefined;
  /** Sends a notification related to this request (progress, logging). */
  notify(method: string, params: RpcParams): Promise<void>;
  /** Sends a server-to-client request (sampling, elicitation, roots) related to this request. */
  request(method: string, params: RpcParams, options?: { signal?: AbortSignal }): Promise<RpcResult>;
}

export interface RequestContext {
  readonly session: SessionInfo;
  /** Set by the `identify` stage; the anonymous placeholder until then. */
  identity: Identity;
  readonly method: string;
  /** Decoded params exactly as the agent sent them (names namespaced). */
  readonly params: RpcParams;
  readonly requestId: string | number;
  /** Resolved by the router before the pipeline runs, when the method targets one upstream. */
  readonly target: RouteTarget | undefined;
  /** Aborted when the agent cancels the request or the session ends. */
  readonly signal: AbortSignal;
  readonly agent: AgentChannel;
  readonly receivedAt: number;
  /** Work that must complete before the request is forwarded (write-ahead records). */
  readonly beforeForward: Array<(ctx: RequestContext) => Promise<void>>;
  /** Per-request scratch shared by stages (decisions, approval references, redaction summaries). */
  readonly annotations: Map<string, unknown>;
}

export type Next = () => Promise<RpcResult>;
export type StageHandler = (ctx: RequestContext, next: Next) => Promise<RpcResult>;

export interface Stage {
  readonly name: StageName;
  readonly handle: StageHandler;
}

/** A stage that only calls the next one: the default for every slot until a feature fills it. */
export function passThroughStage(name: StageName): Stage {
  return { name, handle: (_ctx, next) => next() };
}

export type Pipeline = (ctx: RequestContext) => Promise<RpcResult>;
/** The terminal handler a pipeline ends in (the gateway's `forward`): itself a pipeline of no stages. */
export type Terminal = Pipeline;
/** Stages composed once, run around whichever terminal each call names (one per agent session). */
export type StagedPipeline = (ctx: RequestContext, forward: Terminal) => Promise<RpcResult>;

/**
 * Composes stages in `STAGE_ORDER` around the terminal `forward` handler. Slots may hold several
 * stages (kept in the order given); an empty slot passes through.
 */
export function composePipeline(stages: readonly Stage[], forward: Terminal): Pipeline {
  const staged = composeStages(stages);
  return (ctx) => staged(ctx, forward);
}

/**
 * `composePipeline` with the terminal given per call: the stages are ordered once and shared by
 * every session, whose `forward` differs.
 */
export function composeStages(stages: readonly Stage[]): StagedPipeline {
  const ordered = STAGE_ORDER.flatMap((slot) => stages.filter((stage) => stage.name === slot));
  if (ordered.length === 0) return terminate;
  return (ctx, forward) => {
    const run = (index: number): Promise<RpcResult> => {
      const stage = ordered[index];
      if (stage === undefined) return terminate(ctx, forward);
      let called = false;
      return stage.handle(ctx, () => {
        if (called) return Promise.reject(new Error(`stage "${stage.name}" called next() twice`));
        called = true;
        return run(index + 1);
      });
    };
    return run(0);
  };
}

/**
 * Drains `ctx.beforeForward`, then calls the terminal; with nothing to drain the terminal is called
 * at once (a pass-through pipeline's whole cost). Either way a throw becomes a rejection.
 */
function terminate(ctx: RequestContext, forward: Terminal): Promise<RpcResult> {
  if (ctx.beforeForward.length !== 0) return drainBeforeForward(ctx).then(() => forward(ctx));
  try {
    return forward(ctx);
  } catch (error) {
    return Promise.reject(error);
  }
}

async function drainBeforeForward(ctx: RequestContext): Promise<void> {
  for (const hook of ctx.beforeForward) await hook(ctx);
}
