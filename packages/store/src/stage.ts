import {
  type Identity,
  JsonRpcError,
  PortcullisError,
  type RequestContext,
  RpcCode,
  type RpcResult,
  type SessionInfo,
  type Stage,
} from '@portcullis/core';
import type { Store, ToolCallCompletion, ToolCallInput } from './store.js';

/** JSON-RPC code (implementation-defined server range) answered when a tool call is refused because the session log is down. */
export const STORE_UNAVAILABLE_RPC_CODE = RpcCode.AuditUnavailable;

/**
 * Annotation keys the decision stages fill in `ctx.annotations` for the record stage to read.
 * Until policy, approvals and redaction exist, a forwarded call is recorded with decision `allow`.
 */
export const RecordAnnotations = {
  /** `{ decision: string; rule?: string }` set by `authorize`. */
  decision: 'policy.decision',
  /** `{ ref: string }` set by `hold`. */
  approval: 'approval',
  /** Any JSON summary set by `transform` (what was redacted, never the secret itself). */
  redaction: 'redaction.summary',
} as const;

export interface RecordStageOptions {
  /** Failures the stage tolerates (the event is spooled or lost, the call goes on): log them. */
  readonly onError?: (error: PortcullisError) => void;
  /**
   * 2026-era sessions last one request: end them in the log when the request completes
   * (default true).
   */
  readonly endModernSessions?: boolean;
}

export interface SessionRecorder {
  /** Records a session's start once (later calls for the same id are no-ops). */
  start(session: SessionInfo, identity: Identity): Promise<void>;
  /** Records a session's end (`closed`, `transport-error`, `shutdown`, …). */
  end(sessionId: string, reason: string): Promise<void>;
  /**
   * Records a notification sent to the agent of a session this recorder has started; ignored for
   * any other session (a session is started by its first request, and only its owner extends its chain).
   */
  notification(sessionId: string, method: string, params: unknown): Promise<void>;
}

/** Session start/end bookkeeping shared by the record stage and the gateway's session lifecycle. */
export function createSessionRecorder(store: Store): SessionRecorder {
  const started = new Set<string>();
  return {
    async start(session, identity) {
      if (started.has(session.id)) return;
      started.add(session.id);
      await store.recordSessionStart(session, identity);
    },
    async end(sessionId, reason) {
      if (!started.delete(sessionId)) return;
      await store.recordSessionEnd(sessionId, reason);
    },
    async notification(sessionId, method, params) {
      if (!started.has(sessionId)) return;
      await store.recordEvent({
        sessionId,
        direction: 'to_agent',
        kind: 'notification',
        method,
        payload: params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params },
      });
    },
  };
}

/**
 * The `record` stage. Records the request as the agent sent it, commits a write-ahead tool-call
 * record for `tools/call` just before it is forwarded (a `ctx.beforeForward` hook, so the decision
 * stages have run), then records the outcome as the agent receives it (result, tool error, or
 * JSON-RPC error — including denials, which never reach `forward`).
 *
 * What it writes comes from the `RequestContext` only: the agent's params and the result. Upstream
 * credentials (config headers, env) never enter the context, so they cannot reach the log.
 */
export function createRecordStage(
  store: Store,
  options: RecordStageOptions & { sessions?: SessionRecorder } = {},
): Stage {
  const sessions = options.sessions ?? createSessionRecorder(store);
  const onError = options.onError ?? (() => {});
  const endModern = options.endModernSessions ?? true;

  const tolerate = async <T>(work: () => Promise<T>): Promise<T | undefined> => {
    try {
      return await work();
    } catch (error) {
      onError(
        error instanceof PortcullisError
          ? error
          : new PortcullisError('store.failed', 'session log write failed', { cause: error }),
      );
      return undefined;
    }
  };

  return {
    name: 'record',
    async handle(ctx, next) {
      const sessionId = ctx.session.id;
      await tolerate(() => sessions.start(ctx.session, ctx.identity));
      const requestSeq = await tolerate(() =>
        store.recordEvent({
          sessionId,
          direction: 'from_agent',
          kind: 'request',
          method: ctx.method,
          rpcId: ctx.requestId,
          upstream: ctx.target?.upstream,
          payload: { jsonrpc: '2.0', id: ctx.requestId, method: ctx.method, params: ctx.params },
          at: ctx.receivedAt,
        }),
      );

      const isToolCall = ctx.method === 'tools/call';
      let toolCallId: string | undefined;
      if (isToolCall) {
        ctx.beforeForward.push(async (c) => {
          try {
            toolCallId = await store.recordToolCall(toolCallInput(c, requestSeq));
          } catch (error) {
            if (error instanceof PortcullisError && error.code === 'store.unavailable') {
              onError(error);
              throw new JsonRpcError(
                STORE_UNAVAILABLE_RPC_CODE,
                'Tool call refused: the session log is unavailable and this gateway does not forward unrecorded calls (audit.onStoreFailure: closed)',
                undefined,
                { cause: error },
              );
            }
            throw error;
          }
        });
      }

      const started = performance.now();
      let result: RpcResult | undefined;
      let failure: unknown;
      let failed = false;
      try {
        result = await next();
      } catch (error) {
        failure = error;
        failed = true;
      }
      const durationMs = performance.now() - started;
      const wireError = failed ? asWireError(failure) : undefined;

      await tolerate(() =>
        store.recordEvent({
          sessionId,
          direction: 'to_agent',
          kind: 'response',
          method: ctx.method,
          rpcId: ctx.requestId,
          upstream: ctx.target?.upstream,
          payload:
            wireError === undefined
              ? { jsonrpc: '2.0', id: ctx.requestId, result }
              : { jsonrpc: '2.0', id: ctx.requestId, error: wireError },
          latencyMs: durationMs,
        }),
      );

      if (isToolCall) {
        const completion: ToolCallCompletion = {
          outcome:
            wireError === undefined
              ? { kind: 'result', result, isError: result?.isError === true }
              : { kind: 'rpc_error', code: wireError.code, message: wireError.message },
          durationMs,
          redaction: ctx.annotations.get(RecordAnnotations.redaction),
        };
        const id = toolCallId;
        if (id !== undefined) {
          await tolerate(() => store.recordToolCallOutcome(id, completion));
        } else {
          // Never forwarded (denied, held and rejected, refused, or failed before forward).
          await tolerate(() => store.recordUnforwardedToolCall(toolCallInput(ctx, requestSeq), completion));
        }
      }

      if (endModern && ctx.session.era === 'modern') await tolerate(() => sessions.end(sessionId, 'request-complete'));

      if (failed) throw failure;
      return result as RpcResult;
    },
  };
}

function toolCallInput(ctx: RequestContext, requestSeq: number | undefined): ToolCallInput {
  const decision = readDecision(ctx.annotations.get(RecordAnnotations.decision));
  const approval = ctx.annotations.get(RecordAnnotations.approval);
  const approvalRef =
    typeof approval === 'object' && approval !== null && typeof (approval as { ref?: unknown }).ref === 'string'
      ? (approval as { ref: string }).ref
      : undefined;
  const name = typeof ctx.params.name === 'string' ? ctx.params.name : '';
  return {
    sessionId: ctx.session.id,
    rpcId: ctx.requestId,
    requestSeq,
    identity: ctx.identity,
    upstream: ctx.target?.upstream,
    tool: ctx.target?.originalName ?? name,
    namespacedTool: ctx.target?.namespacedName ?? name,
    arguments: ctx.params.arguments ?? {},
    decision: decision.decision,
    decisionRule: decision.rule,
    approvalRef,
    at: ctx.receivedAt,
  };
}

function readDecision(value: unknown): { decision: string; rule: string | undefined } {
  if (typeof value === 'object' && value !== null) {
    const { decision, rule } = value as { decision?: unknown; rule?: unknown };
    if (typeof decision === 'string') return { decision, rule: typeof rule === 'string' ? rule : undefined };
  }
  return { decision: 'allow', rule: undefined };
}

/** The JSON-RPC error the agent receives for a thrown error (mirrors the gateway's wire mapping). */
function asWireError(error: unknown): { code: number; message: string; data?: unknown } {
  if (error instanceof JsonRpcError) return error.toJSON();
  if (error instanceof PortcullisError && error.code === 'upstream.unavailable') {
    return { code: RpcCode.UpstreamUnavailable, message: error.message };
  }
  return { code: RpcCode.InternalError, message: 'Internal error' };
}
