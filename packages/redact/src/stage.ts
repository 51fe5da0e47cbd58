import { JsonRpcError, type RequestContext, type RpcParams, type RpcResult, type Stage } from '@portcullis/core';
import type { Redactor } from './redactor.js';
import type { RedactionSubject } from './rules.js';
import type { JsonSchema } from './schema.js';
import type { RedactionSummary } from './summary.js';

/** `ctx.annotations` key: the `RedactionSummary` of the result the agent received. */
export const REDACTION_SUMMARY_ANNOTATION = 'portcullis.redaction.summary';
/** `ctx.annotations` key: `RedactedArguments`, the arguments as the session log should record them. */
export const REDACTED_ARGS_ANNOTATION = 'portcullis.redaction.args';

export interface RedactedArguments {
  readonly arguments: unknown;
  readonly summary: RedactionSummary;
}

/** What a request is about, for rule matching. */
export function redactionSubjectOf(ctx: RequestContext): RedactionSubject {
  const target = ctx.target;
  const base = {
    upstream: target?.upstream,
    name: target?.originalName,
    namespacedName: target?.namespacedName,
    identity: ctx.identity,
  };
  switch (ctx.method) {
    case 'tools/call':
      return { ...base, kind: 'tool' };
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe':
      return { ...base, kind: 'resource' };
    case 'prompts/get':
      return { ...base, kind: 'prompt' };
    case 'completion/complete': {
      const ref = ctx.params.ref as { type?: unknown } | undefined;
      if (ref?.type === 'ref/prompt') return { ...base, kind: 'prompt' };
      if (ref?.type === 'ref/resource') return { ...base, kind: 'resource' };
      return base;
    }
    default:
      return base;
  }
}

export interface RedactStageOptions {
  readonly redactor: Redactor;
  /** The called tool's `outputSchema` (from the catalog), so `structuredContent` stays valid. */
  readonly outputSchemaOf?: (ctx: RequestContext) => JsonSchema | undefined;
}

/**
 * The `transform` stage: before forwarding, records the log's view of the arguments (when a rule
 * asks for `args`); after, replaces the upstream's result by its redacted copy and records the
 * summary. Requests the gateway answers itself (no target: lists, ping) pass untouched.
 */
export function createRedactStage(options: RedactStageOptions): Stage {
  const { redactor, outputSchemaOf } = options;
  return {
    name: 'transform',
    async handle(ctx, next): Promise<RpcResult> {
      if (ctx.target === undefined) return next();
      const subject = redactionSubjectOf(ctx);
      const plan = redactor.planFor(subject);
      if (plan.empty) return next();
      if (plan.args && ctx.params.arguments !== undefined) {
        const redacted = await redactor.redactArgs(ctx.params.arguments, subject);
        const annotation: RedactedArguments = Object.freeze({ arguments: redacted.value, summary: redacted.summary });
        ctx.annotations.set(REDACTED_ARGS_ANNOTATION, annotation);
      }
      let result: RpcResult;
      try {
        result = await next();
      } catch (error) {
        // An upstream's error message and data are returned data too.
        throw await redactError(redactor, error, subject);
      }
      const outputSchema = ctx.method === 'tools/call' ? outputSchemaOf?.(ctx) : undefined;
      const redacted = await redactor.redactResult(ctx.method, result, subject, { outputSchema });
      ctx.annotations.set(REDACTION_SUMMARY_ANNOTATION, redacted.summary);
      return redacted.value;
    },
  };
}

/** A JSON-RPC error with its message and data redacted like a logging message; anything else as it is. */
async function redactError(redactor: Redactor, error: unknown, subject: RedactionSubject): Promise<unknown> {
  if (!(error instanceof JsonRpcError)) return error;
  const redacted = await redactor.redactOutbound(
    'notifications/message',
    { level: 'error', data: { message: error.message, data: error.data } },
    subject,
  );
  if (redacted.summary.total === 0) return error;
  const { message, data } = redacted.value.data as { message: unknown; data: unknown };
  // No `cause`: the original would carry the unredacted text to anything that logs the error.
  return new JsonRpcError(error.code, typeof message === 'string' ? message : '[REDACTED]', data);
}

export interface OutboundMessage {
  readonly method: string;
  readonly params: RpcParams;
  /** The upstream it comes from; unknown: rules naming upstreams apply anyway (fail closed). */
  readonly upstream?: string | undefined;
  /** The request it relates to, when the gateway knows it (then rules naming tools/resources/prompts apply exactly). */
  readonly related?: RequestContext | undefined;
  /** Who will receive it, when there is no related request. */
  readonly identity?: RedactionSubject['identity'];
}

/**
 * For the gateway's upstream→agent path (notifications and server-to-client requests that do not
 * cross the pipeline): returns the params to deliver and the summary to log. Without a related
 * request, rules that name tools, resources or prompts apply too (fail closed).
 */
export function createOutboundRedaction(
  redactor: Redactor,
): (message: OutboundMessage) => Promise<{ params: RpcParams; summary: RedactionSummary }> {
  return async (message) => {
    const subject: RedactionSubject =
      message.related !== undefined
        ? { ...redactionSubjectOf(message.related), upstream: message.upstream ?? message.related.target?.upstream }
        : { upstream: message.upstream, identity: message.identity };
    const redacted = await redactor.redactOutbound(message.method, message.params, subject);
    return { params: redacted.value, summary: redacted.summary };
  };
}
