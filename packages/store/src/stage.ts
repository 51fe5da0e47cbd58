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
 * Annotation keys the decision stages fill in `ctx.annotations` for the record stage to read (the
 * same strings as `@portcullis/policy`'s `DECISION_ANNOTATION` and `@portcullis/redact`'s
 * `REDACTION_SUMMARY_ANNOTATION`/`REDACTED_ARGS_ANNOTATION`; the store depends on neither).
 * Without a policy, a forwarded call is recorded with decision `allow`.
 */
export const RecordAnnotations = {
  /** `{ decision: string; rule?: string | null; policyVersion?: string }` set by `authorize`. */
  decision: 'portcullis.policy.decision',
  /** `{ ref: string }` set by `hold`. */
  approval: 'portcullis.approval',
  /** Any JSON summary set by `transform` (what was redacted in the result, never the secret itself). */
  redaction: 'portcullis.redaction.summary',
  /** `{ arguments: unknown; summary: unknown }` set by `transform`: the arguments as the log records them. */
  redactedArguments: 'portcullis.redaction.args',
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
  /** Starts a 2025-era session at its `initialize` handshake and records both halves of it. */
  opened(session: SessionInfo, identity: Identity, handshake: { request: unknown; result: unknown }): Promise<void>;
  /** Records a notification the agent sent (for a started session). */
  received(sessionId: string, method: string, params: unknown): Promise<void>;
  /** Records a server-to-client request sent to the agent (for a started session). */
  requested(sessionId: string, method: string, params: unknown): Promise<void>;
  /** Records the agent's answer to such a request: its result, or the failure. */
  answered(sessionId: string, method: string, outcome: { result: unknown } | { error: string }): Promise<void>;
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
        payload: message(method, params),
      });
    },
    async opened(session, identity, handshake) {
      if (started.has(session.id)) return;
      started.add(session.id);
      // Called together, so the handshake takes the chain's first places before any request's events.
      await Promise.all([
        store.recordSessionStart(session, identity),
        store.recordEvent({
          sessionId: session.id,
          direction: 'from_agent',
          kind: 'request',
          method: 'initialize',
          payload: message('initialize', handshake.request),
        }),
        store.recordEvent({
          sessionId: session.id,
          direction: 'to_agent',
          kind: 'response',
          method: 'initialize',
          payload: { jsonrpc: '2.0', result: handshake.result },
        }),
        // The agent's `initialized` is what completes the handshake; it arrives before the session is started.
        store.recordEvent({
          sessionId: session.id,
          direction: 'from_agent',
          kind: 'notification',
          method: 'notifications/initialized',
          payload: message('notifications/initialized', undefined),
        }),
      ]);
    },
    async received(sessionId, method, params) {
      if (!started.has(sessionId)) return;
      await store.recordEvent({
        sessionId,
        direction: 'from_agent',
        kind: 'notification',
        method,
        payload: message(method, params),
      });
    },
    async requested(sessionId, method, params) {
      if (!started.has(sessionId)) return;
      await store.recordEvent({
        sessionId,
        direction: 'to_agent',
        kind: 'request',
        method,
        payload: message(method, params),
      });
    },
    async answered(sessionId, method, outcome) {
      if (!started.has(sessionId)) return;
      const payload =
        'result' in outcome
          ? { jsonrpc: '2.0', result: outcome.result }
          : { jsonrpc: '2.0', error: { code: RpcCode.InternalError, message: outcome.error } };
      await store.recordEvent({ sessionId, direction: 'from_agent', kind: 'response', method, payload });
    },
  };
}

/** A JSON-RPC request or notification body as recorded (ids are not known on these paths). */
function message(method: string, params: unknown): Record<string, unknown> {
  return params === undefined ? { jsonrpc: '2.0', method } : { jsonrpc: '2.0', method, params };
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
      // The request is recorded once the decision stages and `transform` have run (just before
      // forward, or after a denial), so its arguments are the redacted ones when redaction applies.
      let requestSeq: number | undefined;
      let requestRecorded = false;
      const recordRequest = async (c: RequestContext): Promise<void> => {
        if (requestRecorded) return;
        requestRecorded = true;
        requestSeq = await tolerate(() =>
          store.recordEvent({
            sessionId,
            direction: 'from_agent',
            kind: 'request',
            method: c.method,
            rpcId: c.requestId,
            upstream: c.target?.upstream,
            payload: { jsonrpc: '2.0', id: c.requestId, method: c.method, params: recordedParams(c) },
            at: c.receivedAt,
          }),
        );
      };

      const isToolCall = ctx.method === 'tools/call';
      let toolCallId: string | undefined;
      ctx.beforeForward.push(async (c) => {
        await recordRequest(c);
        if (isToolCall) {
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
        }
      });

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
      await recordRequest(ctx);

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
          redaction: redactionOf(ctx),
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
    arguments: recordedParams(ctx).arguments ?? {},
    decision: decision.decision,
    decisionRule: decision.rule,
    policyVersion: decision.policyVersion,
    approvalRef,
    at: ctx.receivedAt,
  };
}

/** The params as the log records them: the arguments redacted when `transform` redacted them. */
function recordedParams(ctx: RequestContext): RequestContext['params'] {
  const redacted = ctx.annotations.get(RecordAnnotations.redactedArguments);
  if (typeof redacted === 'object' && redacted !== null && 'arguments' in redacted) {
    return { ...ctx.params, arguments: (redacted as { arguments: unknown }).arguments };
  }
  return ctx.params;
}

/** The redaction summaries (arguments, result) of a call; `undefined` when nothing was redacted. */
function redactionOf(ctx: RequestContext): unknown {
  const result = ctx.annotations.get(RecordAnnotations.redaction);
  const args = ctx.annotations.get(RecordAnnotations.redactedArguments);
  const argsSummary = typeof args === 'object' && args !== null ? (args as { summary?: unknown }).summary : undefined;
  if (argsSummary === undefined) return result;
  return { arguments: argsSummary, ...(result === undefined ? {} : { result }) };
}

function readDecision(value: unknown): {
  decision: string;
  rule: string | undefined;
  policyVersion: string | undefined;
} {
  if (typeof value === 'object' && value !== null) {
    const { decision, rule, policyVersion } = value as { decision?: unknown; rule?: unknown; policyVersion?: unknown };
    if (typeof decision === 'string') {
      return {
        decision,
        rule: typeof rule === 'string' ? rule : undefined,
        policyVersion: typeof policyVersion === 'string' ? policyVersion : undefined,
      };
    }
  }
  return { decision: 'allow', rule: undefined, policyVersion: undefined };
}

/** The JSON-RPC error the agent receives for a thrown error (mirrors the gateway's wire mapping). */
function asWireError(error: unknown): { code: number; message: string; data?: unknown } {
  if (error instanceof JsonRpcError) return error.toJSON();
  if (error instanceof PortcullisError && error.code === 'upstream.unavailable') {
    return { code: RpcCode.UpstreamUnavailable, message: error.message };
  }
  return { code: RpcCode.InternalError, message: 'Internal error' };
}
