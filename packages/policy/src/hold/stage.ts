import { createHash, randomBytes } from 'node:crypto';
import type { Next, RequestContext, RpcResult, Stage } from '@portcullis/core';
import type { Decision } from '../evaluate.js';
import { DECISION_ANNOTATION, denial, HOLD_RELEASED_ANNOTATION } from '../stage.js';
import { CONFIRMATION_ANNOTATION, type ConfirmationRecord } from './confirm.js';

/** `ctx.annotations` key the record stage reads the approval reference from. */
export const APPROVAL_ANNOTATION = 'portcullis.approval';

export type HoldMode = 'wait' | 'retry';
export type HeldStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'withdrawn' | 'consumed';
/** The session-log events of a hold. */
export type HoldEventName = 'requested' | 'approved' | 'denied' | 'expired' | 'withdrawn' | 'consumed';

export interface HoldReviewers {
  readonly groups: readonly string[];
  readonly subjects: readonly string[];
}

/** What the hold stage needs to know of a stored approval (the store's record has more). */
export interface HeldApproval {
  readonly id: string;
  readonly status: HeldStatus;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly argsHash: string;
  readonly reviewers: HoldReviewers;
  readonly requestedAt: Date;
  readonly expiresAt: Date;
  readonly decidedBy: string | null;
  readonly reason: string | null;
}

export interface HoldRequest {
  readonly id: string;
  readonly mode: HoldMode;
  readonly sessionId: string;
  readonly rpcId: string | number;
  readonly subject: string;
  readonly groups: readonly string[];
  readonly upstream: string;
  readonly tool: string;
  readonly namespacedTool: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly argsHash: string;
  readonly rule: string | null;
  readonly policyVersion: string | null;
  readonly reviewers: HoldReviewers;
  readonly requiredCount: number;
  readonly onTimeout: 'deny' | 'allow';
  readonly webhook: string | undefined;
  readonly requestedAt: Date;
  readonly expiresAt: Date;
}

export interface CallKey {
  readonly subject: string;
  readonly namespacedTool: string;
  readonly argsHash: string;
}

/** The store behind the hold stage (implemented over `@portcullis/store` by the gateway program). */
export interface HoldBackend {
  create(request: HoldRequest): Promise<HeldApproval>;
  get(id: string): Promise<HeldApproval | undefined>;
  /** `pending` → expired/withdrawn; false when no longer pending. */
  close(id: string, status: 'expired' | 'withdrawn'): Promise<boolean>;
  /** `approved` → `consumed`, once. */
  consume(id: string, sessionId: string): Promise<boolean>;
  /** Consumes an approved, unexpired approval of the identical call, exactly once. */
  consumeMatching(call: CallKey & { sessionId: string }): Promise<HeldApproval | undefined>;
  findPending(call: CallKey): Promise<HeldApproval | undefined>;
  /** Calls `changed` whenever approval `id` may have changed (NOTIFY, polling); returns the unsubscribe. */
  watch(id: string, changed: () => void): () => void;
  /** Appends a session-log event for this request. */
  event(ctx: RequestContext, name: HoldEventName, details: Record<string, unknown>): Promise<void>;
  /** Fire-and-forget webhook POST (never awaited by the stage). */
  webhook?(url: string, body: { text: string; event: HoldEventName; approval: string }): void;
}

export interface HoldStageOptions {
  readonly backend: HoldBackend;
  /** Default mode when the rule does not say (`approval.mode` in the configuration). */
  readonly mode?: HoldMode;
  /** Progress heartbeat period while a call waits (default 5,000 ms). */
  readonly heartbeatMs?: number;
  readonly newId?: () => string;
  readonly now?: () => Date;
  readonly onError?: (error: unknown, what: string) => void;
  /**
   * True while the gateway shuts down: a held call aborted then leaves its approval pending (it
   * survives the restart; the identical call picks it up) instead of withdrawing it.
   */
  readonly closing?: () => boolean;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON with object keys sorted at every level (`undefined` members dropped, as JSON does). */
export function canonicalArguments(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map((v) => canonicalArguments(v ?? null)).join(',')}]`;
  if (isRecord(value)) {
    const keys = Object.keys(value)
      .filter((k) => value[k] !== undefined)
      .sort();
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalArguments(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}

/** SHA-256 (hex) of the canonical arguments: what an approval is bound to. */
export function argumentsHash(args: unknown): string {
  return createHash('sha256').update(canonicalArguments(args)).digest('hex');
}

/** `10m`, `2h`, `30s`, `250ms` */
export function formatDuration(ms: number): string {
  const units: Array<[number, string]> = [
    [86_400_000, 'd'],
    [3_600_000, 'h'],
    [60_000, 'm'],
    [1_000, 's'],
  ];
  for (const [size, unit] of units) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}

export function describeHoldReviewers(reviewers: HoldReviewers): string {
  return [...reviewers.groups.map((g) => `group ${g}`), ...reviewers.subjects.map((s) => `subject ${s}`)].join(' or ');
}

function toolError(text: string): RpcResult {
  return { content: [{ type: 'text', text }], isError: true };
}

type Settled =
  | { readonly kind: 'decided'; readonly approval: HeldApproval }
  | { readonly kind: 'expired' }
  | { readonly kind: 'withdrawn' }
  | { readonly kind: 'interrupted' };

/**
 * The `hold` stage. A `tools/call` the authorize stage decided `approve` (with `pending: 'next'`) is
 * held: an approval record is committed, then
 * - `wait`: the request stays open (progress heartbeats when the agent sent a progress token) until
 *   enough reviewers approved (forwarded with exactly the approved arguments), one denied (a tool
 *   error with the reason), it expired (`onTimeout`), or the agent cancelled (withdrawn);
 * - `retry`: answered at once with a tool error naming the approval; the identical call (same
 *   identity, tool and argument hash) goes through once approved, consuming the approval once.
 * `confirm` decisions are the confirm stage's (`createConfirmStage`, before this one): a call the
 * user confirmed passes; one it could not ask for with `otherwise: approve` is held like `approve`;
 * without the confirm stage they are refused unless `otherwise: approve` and no elicitation.
 */
export function createHoldStage(options: HoldStageOptions): Stage {
  const backend = options.backend;
  const now = options.now ?? (() => new Date());
  const heartbeatMs = options.heartbeatMs ?? 5_000;
  const newId = options.newId ?? (() => `apr_${randomBytes(8).toString('hex')}`);
  const onError = options.onError ?? (() => undefined);

  const event = (ctx: RequestContext, name: HoldEventName, details: Record<string, unknown>) =>
    backend.event(ctx, name, details).catch((error: unknown) => onError(error, `approval event ${name}`));

  const hook = (url: string | undefined, name: HoldEventName, approval: string, text: string) => {
    if (url === undefined || backend.webhook === undefined) return;
    try {
      backend.webhook(url, { text, event: name, approval });
    } catch (error) {
      onError(error, 'approval webhook');
    }
  };

  const release = (ctx: RequestContext, id: string, next: Next): Promise<RpcResult> => {
    ctx.annotations.set(HOLD_RELEASED_ANNOTATION, true);
    ctx.annotations.set(APPROVAL_ANNOTATION, { ref: id });
    return next();
  };

  /** The approved arguments must be exactly the call's: both hashes re-checked. */
  const sameArguments = (approval: HeldApproval, args: Readonly<Record<string, unknown>>): boolean =>
    approval.argsHash === argumentsHash(args) && argumentsHash(approval.arguments) === approval.argsHash;

  const waitFor = (ctx: RequestContext, held: HeldApproval, label: string): Promise<Settled> =>
    new Promise<Settled>((resolve) => {
      let done = false;
      let checking = false;
      let recheck = false;
      const timers: NodeJS.Timeout[] = [];
      const finish = (settled: Settled) => {
        if (done) return;
        done = true;
        for (const t of timers) clearTimeout(t);
        clearInterval(beat);
        unwatch();
        ctx.signal.removeEventListener('abort', onAbort);
        resolve(settled);
      };
      const check = async () => {
        if (done) return;
        if (checking) {
          recheck = true;
          return;
        }
        checking = true;
        try {
          const current = await backend.get(held.id);
          if (current === undefined) finish({ kind: 'withdrawn' });
          else if (current.status === 'expired') finish({ kind: 'expired' });
          else if (current.status === 'withdrawn') finish({ kind: 'withdrawn' });
          else if (current.status !== 'pending') finish({ kind: 'decided', approval: current });
        } catch (error) {
          onError(error, 'approval check');
        } finally {
          checking = false;
          if (recheck && !done) {
            recheck = false;
            void check();
          }
        }
      };
      const unwatch = backend.watch(held.id, () => void check());
      const onAbort = () => {
        if (options.closing?.()) {
          finish({ kind: 'interrupted' });
          return;
        }
        void backend.close(held.id, 'withdrawn').then(
          (changed) => (changed ? finish({ kind: 'withdrawn' }) : check()),
          (error: unknown) => {
            onError(error, 'approval withdrawal');
            finish({ kind: 'withdrawn' });
          },
        );
      };
      const expire = () => {
        void backend.close(held.id, 'expired').then(
          (changed) => (changed ? finish({ kind: 'expired' }) : check()),
          (error: unknown) => {
            onError(error, 'approval expiry');
            finish({ kind: 'expired' });
          },
        );
      };
      timers.push(setTimeout(expire, Math.max(0, held.expiresAt.getTime() - now().getTime())));
      const meta = ctx.params._meta;
      const token = isRecord(meta) ? meta.progressToken : undefined;
      let progress = 0;
      const beat = setInterval(() => {
        if (token === undefined || (typeof token !== 'string' && typeof token !== 'number')) return;
        progress += 1;
        ctx.agent
          .notify('notifications/progress', {
            progressToken: token,
            progress,
            message: `waiting for approval ${held.id} by ${label}`,
          })
          .catch(() => undefined);
      }, heartbeatMs);
      if (ctx.signal.aborted) onAbort();
      else ctx.signal.addEventListener('abort', onAbort, { once: true });
      void check();
    });

  return {
    name: 'hold',
    handle: async (ctx, next) => {
      const decision = ctx.annotations.get(DECISION_ANNOTATION) as Decision | undefined;
      if (decision === undefined || ctx.method !== 'tools/call' || ctx.target === undefined) return next();
      if (decision.decision !== 'approve' && decision.decision !== 'confirm') return next();
      // The user confirmed the call (the confirm stage released it).
      if (ctx.annotations.get(HOLD_RELEASED_ANNOTATION) === true) return next();
      const by = decision.rule === null ? 'the default action' : `policy rule "${decision.rule}"`;
      const approve = decision.approve;
      if (decision.decision === 'confirm') {
        // The confirm stage passes on the confirms it could not ask for (otherwise: approve).
        const confirmation = ctx.annotations.get(CONFIRMATION_ANNOTATION) as ConfirmationRecord | undefined;
        const elicits =
          confirmation === undefined
            ? ctx.agent.capabilities.elicitation !== undefined
            : confirmation.answer !== 'unavailable';
        if (elicits || decision.confirm?.otherwise !== 'approve' || approve === null) {
          return denial(
            ctx.method,
            `denied: ${by} requires the user's confirmation, and confirmation by elicitation is not available on this gateway`,
          );
        }
      }
      if (approve === null) return denial(ctx.method, `denied: ${by} requires approval but names no reviewers`);

      const args = isRecord(ctx.params.arguments) ? ctx.params.arguments : {};
      const argsHash = argumentsHash(args);
      const key: CallKey = { subject: ctx.identity.subject, namespacedTool: ctx.target.namespacedName, argsHash };
      // `retry` when the rule or the gateway's configuration says so.
      const mode: HoldMode = approve.mode === 'retry' || options.mode === 'retry' ? 'retry' : 'wait';
      const label = describeHoldReviewers(approve.reviewers);
      const timeout = formatDuration(approve.timeoutMs);

      {
        const granted = await backend.consumeMatching({ ...key, sessionId: ctx.session.id });
        if (granted !== undefined) {
          if (!sameArguments(granted, args)) {
            return toolError(`denied: approval ${granted.id} does not match this call's arguments`);
          }
          void event(ctx, 'consumed', { approval: granted.id, decidedBy: granted.decidedBy, argsHash });
          return release(ctx, granted.id, next);
        }
        const open = await backend.findPending(key);
        if (open !== undefined && mode === 'wait')
          return settle(ctx, next, open, approve, label, timeout, args, argsHash);
        if (open !== undefined) {
          return toolError(
            `approval ${open.id} is still pending (${label} must approve); the identical call will go through once approved`,
          );
        }
      }

      const requestedAt = now();
      const held = await backend.create({
        id: newId(),
        mode,
        sessionId: ctx.session.id,
        rpcId: ctx.requestId,
        subject: ctx.identity.subject,
        groups: ctx.identity.groups,
        upstream: ctx.target.upstream,
        tool: ctx.target.originalName,
        namespacedTool: ctx.target.namespacedName,
        arguments: args,
        argsHash,
        rule: decision.rule,
        policyVersion: decision.policyVersion,
        reviewers: approve.reviewers,
        requiredCount: approve.count,
        onTimeout: approve.onTimeout,
        webhook: approve.webhook,
        requestedAt,
        expiresAt: new Date(requestedAt.getTime() + approve.timeoutMs),
      });
      ctx.annotations.set(APPROVAL_ANNOTATION, { ref: held.id });
      await event(ctx, 'requested', {
        approval: held.id,
        rule: decision.rule,
        mode,
        reviewers: approve.reviewers,
        count: approve.count,
        argsHash,
        expiresAt: held.expiresAt.toISOString(),
      });
      hook(
        approve.webhook,
        'requested',
        held.id,
        `Approval ${held.id} requested: ${ctx.identity.subject} calls ${ctx.target.namespacedName} (${by}); reviewers: ${label}; expires in ${timeout}. Decide with: portcullis approvals approve ${held.id} --as <you>`,
      );

      if (mode === 'retry') {
        return toolError(
          `approval ${held.id} required: ${by} holds this call for ${label}. The identical call (same tool and arguments) will go through once approved, within ${timeout}.`,
        );
      }

      return settle(ctx, next, held, approve, label, timeout, args, argsHash);
    },
  };

  async function settle(
    ctx: RequestContext,
    next: Next,
    held: HeldApproval,
    approve: NonNullable<Decision['approve']>,
    label: string,
    timeout: string,
    args: Readonly<Record<string, unknown>>,
    argsHash: string,
  ): Promise<RpcResult> {
    const settled = await waitFor(ctx, held, label);
    switch (settled.kind) {
      case 'interrupted':
        return toolError(
          `approval ${held.id} is still pending: the gateway is shutting down; retry the identical call`,
        );
      case 'withdrawn':
        await event(ctx, 'withdrawn', { approval: held.id });
        hook(approve.webhook, 'withdrawn', held.id, `Approval ${held.id} withdrawn: the agent cancelled the call`);
        return toolError(`approval ${held.id} withdrawn: the call was cancelled`);
      case 'expired': {
        await event(ctx, 'expired', { approval: held.id, after: timeout, onTimeout: approve.onTimeout });
        hook(approve.webhook, 'expired', held.id, `Approval ${held.id} expired after ${timeout}`);
        if (approve.onTimeout === 'allow') return release(ctx, held.id, next);
        return toolError(`denied: approval ${held.id} expired after ${timeout}`);
      }
      default: {
        const approval = settled.approval;
        if (approval.status === 'denied') {
          await event(ctx, 'denied', { approval: held.id, by: approval.decidedBy, reason: approval.reason });
          hook(
            approve.webhook,
            'denied',
            held.id,
            `Approval ${held.id} denied by ${approval.decidedBy ?? 'a reviewer'}: ${approval.reason ?? ''}`,
          );
          return toolError(
            `denied: approval ${held.id} was denied by ${approval.decidedBy ?? 'a reviewer'}: ${approval.reason ?? 'no reason given'}`,
          );
        }
        if (approval.status !== 'approved') {
          return toolError(`denied: approval ${held.id} is ${approval.status}`);
        }
        await event(ctx, 'approved', { approval: held.id, by: approval.decidedBy, note: approval.reason });
        hook(approve.webhook, 'approved', held.id, `Approval ${held.id} approved by ${approval.decidedBy ?? ''}`);
        if (!(await backend.consume(held.id, ctx.session.id))) {
          return toolError(`denied: approval ${held.id} was already used`);
        }
        if (!sameArguments(approval, args)) {
          return toolError(`denied: approval ${held.id} does not match this call's arguments`);
        }
        await event(ctx, 'consumed', { approval: held.id, argsHash });
        return release(ctx, held.id, next);
      }
    }
  }
}
