import { randomBytes, randomUUID } from 'node:crypto';
import {
  createRequestStateCodec,
  type InputRequest,
  inputRequired,
  type RequestStateCodec,
  type ServerContext,
} from '@modelcontextprotocol/server';
import { JsonRpcError, type RequestContext, RpcCode, type RpcParams, type RpcResult } from '@portcullis/core';
import type { UpstreamConnection } from '@portcullis/upstream';
import { rewriteOutboundParams } from './uris.js';

/** Marks a `requestState` the gateway minted (anything else belongs to a 2026-era upstream and passes through). */
export const GATEWAY_STATE_PREFIX = 'pcg1.';
/** `RequestContext.annotations` key under which a verified retry reaches `forward`. */
const RESUME_ANNOTATION = 'portcullis.gateway/interaction';
/** Server-to-client requests a 2025-era upstream may push that an `input_required` result can carry. */
const EMBEDDABLE = new Set(['elicitation/create', 'sampling/createMessage', 'roots/list']);

interface StatePayload {
  readonly call: string;
  /** The tool (or prompt, resource) the agent called, as it named it. */
  readonly target: string;
  readonly keys: readonly string[];
}

/** A verified retry: which parked call it continues, and the agent's answers. */
export interface Resume {
  readonly call: string;
  readonly target: string;
  readonly keys: readonly string[];
  readonly responses: Readonly<Record<string, unknown>>;
}

interface Push {
  readonly key: string;
  readonly method: string;
  readonly params: RpcParams;
  readonly resolve: (result: RpcResult) => void;
  readonly reject: (error: unknown) => void;
}

type Outcome =
  | { readonly kind: 'result'; readonly result: RpcResult }
  | { readonly kind: 'error'; readonly error: unknown };

type Send = (options: {
  signal: AbortSignal;
  onProgress: (progress: { progress: number; total?: number; message?: string }) => void;
  timeoutMs: number;
}) => Promise<RpcResult>;

/** One upstream call of a 2026-era agent on a 2025-era connection, possibly spanning several agent requests. */
class ManagedCall {
  readonly id = randomUUID();
  readonly abort = new AbortController();
  /** Pushes not yet shown to the agent. */
  readonly queued: Push[] = [];
  /** Pushes shown to the agent in the last `input_required`, by key, awaiting its retry. */
  readonly asked = new Map<string, Push>();
  outcome: Promise<Outcome> = Promise.resolve({ kind: 'error', error: new Error('not started') });
  /** The agent request currently waiting for this call, if any (progress goes there). */
  current: RequestContext | undefined;
  wake: (() => void) | undefined;
  idle: NodeJS.Timeout | undefined;
  done = false;
  private counter = 0;

  constructor(
    readonly connection: UpstreamConnection,
    readonly upstream: string,
    readonly target: string,
  ) {}

  nextKey(): string {
    this.counter += 1;
    return `upstream_request_${this.counter}`;
  }
}

export interface InteractionOptions {
  /** How long a call waits parked for the agent's retry before it is cancelled upstream. */
  readonly parkMs: number;
  readonly prefixOf: (upstream: string) => string | undefined;
}

/**
 * Lets a 2025-era upstream's server-to-client requests (elicitation, sampling, roots) reach a
 * 2026-era agent, which cannot receive pushes: the upstream call is kept running ("parked") while
 * the agent's request is answered with an `input_required` result embedding the pushed request(s);
 * the agent's retry (with `inputResponses` and the gateway's `requestState`) answers the parked
 * pushes and waits for the upstream again — which may push again (another round) or finish.
 *
 * Invariants: `requestState` is HMAC-sealed with a per-process key (SDK `createRequestStateCodec`),
 * prefixed so the gateway tells its own from an upstream's; a call is parked at most `parkMs`
 * between rounds, after which it is cancelled upstream and its pushes are refused; an agent
 * cancelling a waiting request cancels the upstream call. Only one agent request waits on a call at
 * a time. The gateway's state lives in this process: a retry reaching another process fails cleanly
 * (-32602) and the agent calls again.
 */
export class UpstreamInteractions {
  private readonly codec: RequestStateCodec<StatePayload>;
  private readonly calls = new Map<string, ManagedCall>();

  constructor(private readonly options: InteractionOptions) {
    this.codec = createRequestStateCodec<StatePayload>({
      key: randomBytes(32),
      ttlSeconds: Math.max(1, Math.ceil(options.parkMs / 1000)),
    });
  }

  /** Calls in progress (running or parked). */
  get size(): number {
    return this.calls.size;
  }

  /**
   * Verifies a retry's gateway-minted `requestState` and takes it and the responses out of the
   * params (they are the gateway's, never the upstream's). -32602 when forged, expired or unknown.
   */
  async claimRetry(params: RpcParams, sdkContext: ServerContext): Promise<{ params: RpcParams; resume: Resume }> {
    const { requestState, inputResponses, ...rest } = params;
    if (typeof requestState !== 'string' || !requestState.startsWith(GATEWAY_STATE_PREFIX)) {
      throw new JsonRpcError(RpcCode.InvalidParams, 'Invalid or expired requestState');
    }
    let payload: StatePayload;
    try {
      payload = await this.codec.verify(requestState.slice(GATEWAY_STATE_PREFIX.length), sdkContext);
    } catch {
      throw new JsonRpcError(RpcCode.InvalidParams, 'Invalid or expired requestState');
    }
    const responses =
      typeof inputResponses === 'object' && inputResponses !== null && !Array.isArray(inputResponses)
        ? (inputResponses as Record<string, unknown>)
        : {};
    return { params: rest, resume: { ...payload, responses } };
  }

  /** Hands a verified retry to `forward`. */
  attach(ctx: RequestContext, resume: Resume): void {
    ctx.annotations.set(RESUME_ANNOTATION, resume);
  }

  /**
   * The managed path for a routed request, or `undefined` when a plain request applies (the agent
   * is 2025-era, or the upstream 2026-era and relays `input_required` itself).
   */
  route(
    ctx: RequestContext,
    connection: UpstreamConnection,
    upstream: string,
    send: Send,
  ): Promise<RpcResult> | undefined {
    const resume = ctx.annotations.get(RESUME_ANNOTATION) as Resume | undefined;
    if (resume) return this.resume(ctx, connection, resume);
    if (ctx.session.era !== 'modern' || connection.era !== 'legacy') return undefined;
    return this.start(ctx, connection, upstream, send);
  }

  /**
   * A request the upstream pushed on `connection`: held for the managed call in flight there, or
   * `undefined` when there is none (the caller then treats it as before).
   */
  push(
    connection: UpstreamConnection,
    method: string,
    params: RpcParams,
    signal: AbortSignal,
  ): Promise<RpcResult> | undefined {
    let call: ManagedCall | undefined;
    // With several calls in flight on one connection the pushed request cannot be told apart (2025
    // clients see no related request id): the latest call gets it.
    for (const candidate of this.calls.values())
      if (candidate.connection === connection && !candidate.done) call = candidate;
    if (!call) return undefined;
    if (!EMBEDDABLE.has(method)) {
      return Promise.reject(new JsonRpcError(RpcCode.MethodNotFound, `The gateway does not relay ${method} to agents`));
    }
    const owner = call;
    return new Promise<RpcResult>((resolve, reject) => {
      const { _meta: _ignored, ...bare } = rewriteOutboundParams(method, params, this.options.prefixOf(owner.upstream));
      const push: Push = { key: owner.nextKey(), method, params: bare, resolve, reject };
      owner.queued.push(push);
      signal.addEventListener(
        'abort',
        () => {
          const index = owner.queued.indexOf(push);
          if (index !== -1) owner.queued.splice(index, 1);
          owner.asked.delete(push.key);
          reject(signal.reason);
        },
        { once: true },
      );
      owner.wake?.();
    });
  }

  /** Cancels every call (the gateway is closing). */
  close(): void {
    for (const call of [...this.calls.values()]) this.end(call, new Error('gateway closing'));
  }

  private start(ctx: RequestContext, connection: UpstreamConnection, upstream: string, send: Send): Promise<RpcResult> {
    const call = new ManagedCall(connection, upstream, ctx.target?.namespacedName ?? '');
    this.calls.set(call.id, call);
    call.outcome = send({
      signal: call.abort.signal,
      onProgress: (progress) => {
        const current = call.current;
        const meta = current?.params._meta;
        const token =
          typeof meta === 'object' && meta !== null ? (meta as Record<string, unknown>).progressToken : undefined;
        if (!current || (typeof token !== 'string' && typeof token !== 'number')) return;
        void current.agent
          .notify('notifications/progress', { ...progress, progressToken: token })
          .catch(() => undefined);
      },
      // The upstream's request may legitimately outlast one agent round trip per push.
      timeoutMs: connection.spec.requestTimeoutMs + 4 * this.options.parkMs,
    }).then(
      (result): Outcome => ({ kind: 'result', result }),
      (error: unknown): Outcome => ({ kind: 'error', error }),
    );
    return this.round(call, ctx);
  }

  private resume(ctx: RequestContext, connection: UpstreamConnection, resume: Resume): Promise<RpcResult> {
    const call = this.calls.get(resume.call);
    if (!call || call.done) {
      return Promise.reject(
        new JsonRpcError(
          RpcCode.InvalidParams,
          'Invalid or expired requestState: the interaction has ended (timed out or cancelled); call again',
        ),
      );
    }
    if (call.connection !== connection || call.target !== (ctx.target?.namespacedName ?? '')) {
      return Promise.reject(new JsonRpcError(RpcCode.InvalidParams, 'Invalid requestState: issued for another call'));
    }
    if (call.current) {
      return Promise.reject(
        new JsonRpcError(RpcCode.InvalidParams, 'Invalid requestState: this round was already answered'),
      );
    }
    if (call.idle) clearTimeout(call.idle);
    call.idle = undefined;
    for (const key of resume.keys) {
      const push = call.asked.get(key);
      if (!push) continue;
      call.asked.delete(key);
      const response = resume.responses[key];
      if (typeof response === 'object' && response !== null && !Array.isArray(response))
        push.resolve(response as RpcResult);
      else push.reject(new JsonRpcError(RpcCode.InvalidParams, `The agent gave no response to ${push.method}`));
    }
    return this.round(call, ctx);
  }

  /** Waits for the upstream's result or its next push(es), on behalf of one agent request. */
  private async round(call: ManagedCall, ctx: RequestContext): Promise<RpcResult> {
    call.current = ctx;
    let onAbort: (() => void) | undefined;
    const aborted = new Promise<'aborted'>((resolve) => {
      onAbort = () => resolve('aborted');
      if (ctx.signal.aborted) resolve('aborted');
      else ctx.signal.addEventListener('abort', onAbort, { once: true });
    });
    try {
      while (call.queued.length === 0) {
        const woken = new Promise<'push'>((resolve) => {
          call.wake = () => resolve('push');
        });
        const next = await Promise.race([call.outcome, woken, aborted]);
        call.wake = undefined;
        if (next === 'aborted') {
          this.end(call, ctx.signal.reason ?? new Error('cancelled'));
          throw ctx.signal.reason ?? new Error('cancelled');
        }
        if (next === 'push') continue;
        this.end(call);
        if (next.kind === 'result') return next.result;
        throw next.error;
      }
      // Requests the upstream sends together (e.g. roots then elicitation) join one round.
      await new Promise((resolve) => setImmediate(resolve));
      const pushes = call.queued.splice(0);
      const inputRequests: Record<string, InputRequest> = {};
      for (const push of pushes) {
        call.asked.set(push.key, push);
        // The embedded request is the pushed one as the upstream sent it (URIs rewritten); the SDK types it per method.
        inputRequests[push.key] = { method: push.method, params: push.params } as unknown as InputRequest;
      }
      const state = await this.codec.mint({ call: call.id, target: call.target, keys: pushes.map((push) => push.key) });
      call.idle = setTimeout(() => {
        this.end(call, new JsonRpcError(RpcCode.InternalError, 'the agent did not answer the input request in time'));
      }, this.options.parkMs);
      call.idle.unref();
      return inputRequired({ inputRequests, requestState: `${GATEWAY_STATE_PREFIX}${state}` }) as unknown as RpcResult;
    } finally {
      call.current = undefined;
      call.wake = undefined;
      if (onAbort) ctx.signal.removeEventListener('abort', onAbort);
    }
  }

  /** Ends a call: cancels it upstream when `reason` is given, and refuses whatever it still pushed. */
  private end(call: ManagedCall, reason?: unknown): void {
    if (call.done) return;
    call.done = true;
    this.calls.delete(call.id);
    if (call.idle) clearTimeout(call.idle);
    if (reason !== undefined) call.abort.abort(reason);
    const refusal = new JsonRpcError(RpcCode.InternalError, 'The agent request this was asked for has ended');
    for (const push of [...call.queued, ...call.asked.values()]) push.reject(refusal);
    call.queued.length = 0;
    call.asked.clear();
  }
}
