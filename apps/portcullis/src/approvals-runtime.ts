import type { Config } from '@portcullis/config';
import { describeError, type Stage } from '@portcullis/core';
import { createSealedState } from '@portcullis/gateway';
import {
  type ConfirmState,
  createConfirmStage,
  createHoldStage,
  type HoldBackend,
  type HoldEventName,
} from '@portcullis/policy';
import { type ApprovalListener, ApprovalStore, listenForApprovals, type Store } from '@portcullis/store';
import type { Logger } from 'pino';

/** The `hold` stage over the session-log store, and what it keeps running (LISTEN client, poll timer). */
export interface ApprovalsRuntime {
  readonly stage: Stage;
  close(): Promise<void>;
}

/** Marks a `requestState` minted for a confirmation (the gateway's own interactions use `pcg1.`). */
const CONFIRM_STATE_PREFIX = 'pcc1.';
/** How long the agent has to answer a 2026-era confirmation. */
const CONFIRM_STATE_TTL_SECONDS = 600;

/** Events the agent's side caused come `from_agent`; reviewers' outcomes go `to_agent`. */
const FROM_AGENT: ReadonlySet<HoldEventName> = new Set(['requested', 'withdrawn', 'consumed']);

/**
 * Builds the hold stage over `store`: approval records in `portcullis_approvals`, decisions seen
 * through LISTEN/NOTIFY (a dedicated `pg` client, Postgres only) and polling (every
 * `approval.pollMs` with PGlite; five times slower as a fallback on Postgres), webhooks POSTed
 * without waiting.
 */
export function startApprovals(
  config: Config,
  store: Store,
  databaseUrl: string | undefined,
  logger: Logger,
): ApprovalsRuntime {
  const log = logger.child({ component: 'approvals' });
  const approvals = new ApprovalStore(store.db);
  const watchers = new Map<string, Set<() => void>>();
  const poke = (id: string) => {
    for (const changed of watchers.get(id) ?? []) changed();
  };
  let listener: ApprovalListener | undefined;
  if (store.dialect === 'postgres' && databaseUrl !== undefined) {
    listener = listenForApprovals(databaseUrl, poke, {
      onError: (error) =>
        log.warn({ err: describeError(error) }, 'approval notifications interrupted; polling meanwhile'),
    });
  }
  const pollMs = store.dialect === 'postgres' ? config.approval.pollMs * 5 : config.approval.pollMs;
  const poll = setInterval(() => {
    for (const id of watchers.keys()) poke(id);
  }, pollMs);
  poll.unref();

  const backend: HoldBackend = {
    create: (request) => approvals.create({ ...request, gatewayInstance: store.instance }),
    get: (id) => approvals.get(id),
    close: (id, status) => approvals.close(id, status),
    consume: (id, sessionId) => approvals.consume(id, sessionId),
    consumeMatching: (call) => approvals.consumeMatching(call),
    findPending: (call) => approvals.findPending(call),
    watch: (id, changed) => {
      let set = watchers.get(id);
      if (set === undefined) {
        set = new Set();
        watchers.set(id, set);
      }
      set.add(changed);
      return () => {
        set.delete(changed);
        if (set.size === 0) watchers.delete(id);
      };
    },
    event: async (ctx, name, details) => {
      await store.recordEvent({
        sessionId: ctx.session.id,
        direction: FROM_AGENT.has(name) ? 'from_agent' : 'to_agent',
        kind: 'approval',
        method: `approval/${name}`,
        rpcId: ctx.requestId,
        upstream: ctx.target?.upstream,
        payload: details,
      });
      log.info({ session: ctx.session.id, event: name, ...details }, `approval ${name}`);
    },
    webhook: (url, body) => {
      fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(config.approval.webhookTimeoutMs),
      }).then(
        (response) => {
          if (!response.ok) log.warn({ approval: body.approval, status: response.status }, 'approval webhook refused');
          void response.body?.cancel().catch(() => undefined);
        },
        (error: unknown) => log.warn({ approval: body.approval, err: describeError(error) }, 'approval webhook failed'),
      );
    },
  };

  // A held call aborted because the gateway stops keeps its approval pending (it survives the restart).
  let closing = false;
  const onSignal = () => {
    closing = true;
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  const stage = createHoldStage({
    backend,
    closing: () => closing,
    mode: config.approval.mode,
    heartbeatMs: config.approval.heartbeatMs,
    onError: (error, what) => log.warn({ err: describeError(error) }, `${what} failed`),
  });
  // `confirm` asks the agent's user first (2026 era: an input_required round sealed like the
  // gateway's own); what it cannot ask for with `otherwise: approve` goes on to the hold stage.
  const confirm = createConfirmStage({
    state: createSealedState<ConfirmState>(CONFIRM_STATE_PREFIX, CONFIRM_STATE_TTL_SECONDS),
    event: async (ctx, answer, details) => {
      await store.recordEvent({
        sessionId: ctx.session.id,
        direction: 'from_agent',
        kind: 'approval',
        method: `confirmation/${answer}`,
        rpcId: ctx.requestId,
        upstream: ctx.target?.upstream,
        payload: { answer, ...details },
      });
      log.info({ session: ctx.session.id, answer, ...details }, `confirmation ${answer}`);
    },
    onError: (error, what) => log.warn({ err: describeError(error) }, `${what} failed`),
  });
  const holdStage = stage;
  return {
    stage: { name: 'hold', handle: (ctx, next) => confirm.handle(ctx, () => holdStage.handle(ctx, next)) },
    close: async () => {
      closing = true;
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      clearInterval(poll);
      await listener?.close();
    },
  };
}
