import {
  JsonRpcError,
  type Next,
  PortcullisError,
  type RequestContext,
  RpcCode,
  type RpcParams,
  type RpcResult,
  type Stage,
  unknownTargetError,
} from '@portcullis/core';
import type { CompiledPolicy, TargetKind } from './compile.js';
import { type Decision, evaluate, failedDecision, isHidden, type ListedItem, type PolicyRequest } from './evaluate.js';

/** `ctx.annotations` key under which the `authorize` stage leaves its `Decision`. */
export const DECISION_ANNOTATION = 'portcullis.policy.decision';
/**
 * `ctx.annotations` key the `hold` stage sets to `true` once an `approve`/`confirm` decision has been
 * satisfied. With `pending: 'next'`, forwarding is refused unless it is set (fail closed).
 */
export const HOLD_RELEASED_ANNOTATION = 'portcullis.hold.released';

/** JSON-RPC code for a denied `prompts/get`, `resources/read` or completion (denied tool calls are tool errors). */
export const POLICY_DENIED_CODE = RpcCode.PolicyDenied;

/** What to do with a decision that needs a human (`approve`, `confirm`). */
export type PendingHandler = (ctx: RequestContext, decision: Decision, next: Next) => Promise<RpcResult>;

export interface AuthorizeStageOptions {
  /** The active policy; read on every request, so a new version takes effect at once. */
  readonly policy: () => CompiledPolicy;
  /**
   * `approve` and `confirm` decisions:
   * - `'refuse'` (default): answered like a denial saying approval holds are not available;
   * - `'next'`: passed on to the `hold` stage, which must set `HOLD_RELEASED_ANNOTATION` before the
   *   call is forwarded — a guard in `ctx.beforeForward` refuses it otherwise;
   * - a function deciding the answer itself.
   */
  readonly pending?: 'refuse' | 'next' | PendingHandler;
  /**
   * Resolves a listed item's gateway name (tools, prompts) or URI (resources, templates) to its
   * upstream and own name. When given, list results are filtered with `isHidden`; an item it cannot
   * resolve is left out (fail closed). Without it lists pass unchanged and the caller filters.
   */
  readonly resolveListItem?: (kind: TargetKind, namespacedName: string) => ListedItem | undefined;
  /** The clock conditions see as `now`. */
  readonly now?: () => Date;
}

interface Classified {
  readonly kind: TargetKind;
  readonly args: Readonly<Record<string, unknown>>;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The kind of target a routed method addresses, or undefined for methods policy does not decide. */
function classify(method: string, params: RpcParams): Classified | undefined {
  switch (method) {
    case 'tools/call':
      return { kind: 'tool', args: isRecord(params.arguments) ? params.arguments : {} };
    case 'prompts/get':
      return { kind: 'prompt', args: isRecord(params.arguments) ? params.arguments : {} };
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe':
      return { kind: 'resource', args: {} };
    case 'completion/complete': {
      const ref = params.ref;
      if (isRecord(ref) && ref.type === 'ref/prompt') return { kind: 'prompt', args: {} };
      if (isRecord(ref) && ref.type === 'ref/resource') return { kind: 'resource', args: {} };
      return undefined;
    }
    default:
      return undefined;
  }
}

/**
 * A denial: for `tools/call` a tool result with `isError: true` whose text is the reason, so the
 * model can read it; for the other methods (which have no error result) a JSON-RPC error
 * `POLICY_DENIED_CODE` with the reason as message and `data.reason`.
 */
export function denial(method: string, reason: string): RpcResult {
  if (method === 'tools/call') return { content: [{ type: 'text', text: reason }], isError: true };
  throw new JsonRpcError(POLICY_DENIED_CODE, reason, { reason });
}

const LIST_KEYS: Readonly<Record<string, { key: string; field: string; kind: TargetKind }>> = {
  'tools/list': { key: 'tools', field: 'name', kind: 'tool' },
  'prompts/list': { key: 'prompts', field: 'name', kind: 'prompt' },
  'resources/list': { key: 'resources', field: 'uri', kind: 'resource' },
  'resources/templates/list': { key: 'resourceTemplates', field: 'uriTemplate', kind: 'resource' },
};

function holdGuard(ctx: RequestContext): Promise<void> {
  if (ctx.annotations.get(HOLD_RELEASED_ANNOTATION) === true) return Promise.resolve();
  return Promise.reject(
    new PortcullisError(
      'policy.hold_not_released',
      'a call that needs approval reached forward without a released hold',
    ),
  );
}

/**
 * The `authorize` stage: evaluates the active policy for `tools/call`, `prompts/get`,
 * `resources/read|subscribe|unsubscribe` and `completion/complete`, leaves the `Decision` in
 * `ctx.annotations` under `DECISION_ANNOTATION`, and answers it:
 * allow → next(); deny → `denial`; hide → `unknownTargetError`; approve/confirm → `pending`.
 * A request without a target passes on (forward answers it as unknown). If the policy cannot be
 * read or evaluated the call is denied (fail closed) and list results are emptied.
 */
export function createAuthorizeStage(options: AuthorizeStageOptions): Stage {
  const now = options.now ?? (() => new Date());
  const pending = options.pending ?? 'refuse';

  const filterList = async (ctx: RequestContext, next: Next): Promise<RpcResult> => {
    const spec = LIST_KEYS[ctx.method];
    const resolve = options.resolveListItem;
    const result = await next();
    if (spec === undefined || resolve === undefined) return result;
    const items = result[spec.key];
    if (!Array.isArray(items)) return result;
    let policy: CompiledPolicy;
    try {
      policy = options.policy();
    } catch {
      return { ...result, [spec.key]: [] };
    }
    const at = now();
    const visible = items.filter((item: unknown) => {
      if (!isRecord(item)) return false;
      const name = item[spec.field];
      if (typeof name !== 'string') return false;
      const listed = resolve(spec.kind, name);
      if (listed === undefined) return false;
      return !isHidden(policy, ctx.identity, listed, at);
    });
    return { ...result, [spec.key]: visible };
  };

  return {
    name: 'authorize',
    handle: async (ctx, next) => {
      if (ctx.method in LIST_KEYS) return filterList(ctx, next);
      const classified = classify(ctx.method, ctx.params);
      const target = ctx.target;
      if (classified === undefined || target === undefined) return next();
      const request: PolicyRequest = {
        kind: classified.kind,
        identity: ctx.identity,
        upstream: target.upstream,
        name: target.originalName,
        namespacedName: target.namespacedName,
        args: classified.args,
        now: now(),
      };
      let decision: Decision;
      let policy: CompiledPolicy | undefined;
      try {
        policy = options.policy();
        decision = evaluate(policy, request);
      } catch (error) {
        decision = failedDecision(policy, request, error);
      }
      ctx.annotations.set(DECISION_ANNOTATION, decision);
      switch (decision.decision) {
        case 'allow':
          return next();
        case 'hide':
          throw unknownTargetError(ctx.method, ctx.params);
        case 'deny':
          return denial(ctx.method, decision.reason ?? 'denied by policy');
        default: {
          // approve / confirm: a human decides.
          if (classified.kind !== 'tool' || ctx.method !== 'tools/call') {
            return denial(ctx.method, `denied: ${decision.decision} applies to tool calls only`);
          }
          if (typeof pending === 'function') return pending(ctx, decision, next);
          if (pending === 'next') {
            ctx.beforeForward.push(holdGuard);
            return next();
          }
          const by = decision.rule === null ? 'the default action' : `policy rule "${decision.rule}"`;
          return denial(
            ctx.method,
            `denied: ${by} requires ${decision.decision === 'approve' ? "a reviewer's approval" : "the user's confirmation"}, and approval holds are not available on this gateway`,
          );
        }
      }
    },
  };
}
