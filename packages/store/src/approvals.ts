import { canonicalName, PortcullisError } from '@portcullis/core';
import { type Kysely, type Selectable, sql } from 'kysely';
import pg from 'pg';
import { toStorableJson } from './canonical.js';
import { toStoreError } from './errors.js';
import type { ApprovalsTable, ApprovalVotesTable, Database } from './schema.js';

/** Where an approval is in its life. Only `pending` may be decided; only `approved` may be consumed. */
export type ApprovalStatus = 'pending' | 'approved' | 'denied' | 'expired' | 'withdrawn' | 'consumed';

export interface ApprovalReviewers {
  readonly groups: readonly string[];
  readonly subjects: readonly string[];
}

export interface ApprovalVote {
  readonly reviewer: string;
  readonly groups: readonly string[];
  readonly verdict: 'approve' | 'deny';
  readonly note: string | null;
  readonly decidedAt: Date;
}

export interface ApprovalRecord {
  readonly id: string;
  readonly status: ApprovalStatus;
  /** `wait` (the agent's request stays open) or `retry` (the identical call goes through once approved). */
  readonly mode: 'wait' | 'retry';
  readonly sessionId: string;
  readonly rpcId: string | null;
  readonly gatewayInstance: string;
  readonly subject: string;
  readonly groups: readonly string[];
  readonly upstream: string;
  readonly tool: string;
  readonly namespacedTool: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  /** SHA-256 (hex) of the canonical JSON of `arguments`. */
  readonly argsHash: string;
  readonly rule: string | null;
  readonly policyVersion: string | null;
  readonly reviewers: ApprovalReviewers;
  readonly requiredCount: number;
  readonly onTimeout: 'deny' | 'allow';
  readonly webhook: string | null;
  readonly requestedAt: Date;
  /** Pending: when it expires. Approved: until when it may be consumed (the timeout again, from the decision). */
  readonly expiresAt: Date;
  readonly decidedAt: Date | null;
  readonly decidedBy: string | null;
  readonly reason: string | null;
  readonly consumedAt: Date | null;
  readonly consumedSession: string | null;
  readonly votes: readonly ApprovalVote[];
}

export interface NewApproval {
  readonly id: string;
  readonly mode: 'wait' | 'retry';
  readonly sessionId: string;
  readonly rpcId: string | number | undefined;
  readonly gatewayInstance: string;
  readonly subject: string;
  readonly groups: readonly string[];
  readonly upstream: string;
  readonly tool: string;
  readonly namespacedTool: string;
  readonly arguments: Readonly<Record<string, unknown>>;
  readonly argsHash: string;
  readonly rule: string | null;
  readonly policyVersion: string | null;
  readonly reviewers: ApprovalReviewers;
  readonly requiredCount: number;
  readonly onTimeout: 'deny' | 'allow';
  readonly webhook: string | undefined;
  readonly requestedAt: Date;
  readonly expiresAt: Date;
}

export interface ReviewerDecision {
  readonly id: string;
  readonly reviewer: string;
  readonly reviewerGroups: readonly string[];
  readonly verdict: 'approve' | 'deny';
  /** The note (approve) or the reason the agent reads (deny). */
  readonly text: string | undefined;
  readonly at?: Date;
}

/** Why a reviewer's decision was refused; `code` is stable. */
export type ApprovalErrorCode =
  | 'approval.not_found'
  | 'approval.expired'
  | 'approval.decided'
  | 'approval.self'
  | 'approval.not_reviewer';

export class ApprovalError extends PortcullisError {
  constructor(
    readonly reason: ApprovalErrorCode,
    message: string,
  ) {
    super(reason, message);
    this.name = 'ApprovalError';
  }
}

/** The Postgres channel a decision is announced on (payload: the approval id). */
export const APPROVAL_CHANNEL = 'portcullis_approvals';

type Row = Selectable<ApprovalsTable>;
type VoteRow = Selectable<ApprovalVotesTable>;

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

function toDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(String(value));
}

function toReviewers(value: unknown): ApprovalReviewers {
  const record = typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : {};
  return { groups: strings(record.groups), subjects: strings(record.subjects) };
}

function toRecord(row: Row, votes: readonly VoteRow[]): ApprovalRecord {
  const args = row.arguments;
  return {
    id: row.id,
    status: row.status as ApprovalStatus,
    mode: row.mode === 'retry' ? 'retry' : 'wait',
    sessionId: row.session_id,
    rpcId: row.rpc_id,
    gatewayInstance: row.gateway_instance,
    subject: row.identity_subject,
    groups: strings(row.identity_groups),
    upstream: row.upstream,
    tool: row.tool,
    namespacedTool: row.namespaced_tool,
    arguments: typeof args === 'object' && args !== null ? (args as Record<string, unknown>) : {},
    argsHash: row.args_hash,
    rule: row.rule,
    policyVersion: row.policy_version,
    reviewers: toReviewers(row.reviewers),
    requiredCount: row.required_count,
    onTimeout: row.on_timeout === 'allow' ? 'allow' : 'deny',
    webhook: row.webhook,
    requestedAt: toDate(row.requested_at),
    expiresAt: toDate(row.expires_at),
    decidedAt: row.decided_at === null ? null : toDate(row.decided_at),
    decidedBy: row.decided_by,
    reason: row.reason,
    consumedAt: row.consumed_at === null ? null : toDate(row.consumed_at),
    consumedSession: row.consumed_session,
    votes: votes.map((v) => ({
      reviewer: v.reviewer,
      groups: strings(v.reviewer_groups),
      verdict: v.verdict === 'deny' ? 'deny' : 'approve',
      note: v.note,
      decidedAt: toDate(v.decided_at),
    })),
  };
}

/** Whether `reviewer` (with `groups`) is one of the reviewers a rule names (canonical comparison). */
export function isNamedReviewer(reviewers: ApprovalReviewers, reviewer: string, groups: readonly string[]): boolean {
  const subject = canonicalName(reviewer);
  if (reviewers.subjects.some((s) => canonicalName(s) === subject)) return true;
  const mine = new Set(groups.map(canonicalName));
  return reviewers.groups.some((g) => mine.has(canonicalName(g)));
}

/**
 * Approval records in the store. Every state change is one guarded statement or one transaction
 * (`for update`), so two gateways or reviewers never both win; each decision is announced on
 * `APPROVAL_CHANNEL` (LISTEN/NOTIFY on Postgres; harmless on PGlite, where waiters poll).
 */
export class ApprovalStore {
  constructor(readonly db: Kysely<Database>) {}

  async create(input: NewApproval): Promise<ApprovalRecord> {
    try {
      const row = await this.db
        .insertInto('portcullis_approvals')
        .values({
          id: input.id,
          status: 'pending',
          mode: input.mode,
          session_id: input.sessionId,
          rpc_id: input.rpcId === undefined ? null : JSON.stringify(input.rpcId),
          gateway_instance: input.gatewayInstance,
          identity_subject: input.subject,
          identity_groups: JSON.stringify(input.groups),
          upstream: input.upstream,
          tool: input.tool,
          namespaced_tool: input.namespacedTool,
          arguments: JSON.stringify(toStorableJson(input.arguments)),
          args_hash: input.argsHash,
          rule: input.rule,
          policy_version: input.policyVersion,
          reviewers: JSON.stringify(input.reviewers),
          required_count: input.requiredCount,
          on_timeout: input.onTimeout,
          webhook: input.webhook ?? null,
          requested_at: input.requestedAt,
          expires_at: input.expiresAt,
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      return toRecord(row, []);
    } catch (error) {
      throw toStoreError(error, 'approval request');
    }
  }

  async get(id: string): Promise<ApprovalRecord | undefined> {
    const row = await this.db.selectFrom('portcullis_approvals').selectAll().where('id', '=', id).executeTakeFirst();
    if (row === undefined) return undefined;
    const votes = await this.db
      .selectFrom('portcullis_approval_votes')
      .selectAll()
      .where('approval_id', '=', id)
      .orderBy('decided_at')
      .execute();
    return toRecord(row, votes);
  }

  /** Newest first; `status` filters (default: every status). */
  async list(options: { status?: ApprovalStatus; limit?: number } = {}): Promise<ApprovalRecord[]> {
    let query = this.db.selectFrom('portcullis_approvals').selectAll();
    if (options.status !== undefined) query = query.where('status', '=', options.status);
    const rows = await query
      .orderBy('requested_at', 'desc')
      .limit(options.limit ?? 100)
      .execute();
    if (rows.length === 0) return [];
    const votes = await this.db
      .selectFrom('portcullis_approval_votes')
      .selectAll()
      .where(
        'approval_id',
        'in',
        rows.map((r) => r.id),
      )
      .orderBy('decided_at')
      .execute();
    return rows.map((row) =>
      toRecord(
        row,
        votes.filter((v) => v.approval_id === row.id),
      ),
    );
  }

  /**
   * A reviewer approves or denies. Refused (ApprovalError) when the approval is unknown, expired or
   * no longer pending, when the reviewer made the call, or is not one the rule names. Returns the
   * record after the decision (still `pending` while more approvals are needed).
   */
  async decide(decision: ReviewerDecision): Promise<ApprovalRecord> {
    const at = decision.at ?? new Date();
    const result = await this.db.transaction().execute(async (trx) => {
      const row = await trx
        .selectFrom('portcullis_approvals')
        .selectAll()
        .where('id', '=', decision.id)
        .forUpdate()
        .executeTakeFirst();
      if (row === undefined) throw new ApprovalError('approval.not_found', `no approval ${decision.id}`);
      if (row.status === 'pending' && toDate(row.expires_at).getTime() <= at.getTime()) {
        await trx.updateTable('portcullis_approvals').set({ status: 'expired' }).where('id', '=', row.id).execute();
        return { expired: true } as const;
      }
      if (row.status === 'expired') return { expired: true } as const;
      if (row.status !== 'pending') {
        throw new ApprovalError('approval.decided', `approval ${row.id} was already decided: ${row.status}`);
      }
      if (canonicalName(row.identity_subject) === canonicalName(decision.reviewer)) {
        throw new ApprovalError(
          'approval.self',
          `${decision.reviewer} made this call and cannot decide its own approval ${row.id}`,
        );
      }
      const reviewers = toReviewers(row.reviewers);
      if (!isNamedReviewer(reviewers, decision.reviewer, decision.reviewerGroups)) {
        throw new ApprovalError(
          'approval.not_reviewer',
          `${decision.reviewer} is not a reviewer of approval ${row.id} (reviewers: ${describeReviewers(reviewers)})`,
        );
      }
      const already = await trx
        .selectFrom('portcullis_approval_votes')
        .select('reviewer')
        .where('approval_id', '=', row.id)
        .execute();
      if (already.some((v) => canonicalName(v.reviewer) === canonicalName(decision.reviewer))) {
        throw new ApprovalError('approval.decided', `${decision.reviewer} already decided approval ${row.id}`);
      }
      await trx
        .insertInto('portcullis_approval_votes')
        .values({
          approval_id: row.id,
          reviewer: decision.reviewer,
          reviewer_groups: JSON.stringify(decision.reviewerGroups),
          verdict: decision.verdict,
          note: decision.text ?? null,
          decided_at: at,
        })
        .execute();
      if (decision.verdict === 'deny') {
        await trx
          .updateTable('portcullis_approvals')
          .set({ status: 'denied', decided_at: at, decided_by: decision.reviewer, reason: decision.text ?? null })
          .where('id', '=', row.id)
          .execute();
      } else {
        const approvers = [...already.map((v) => v.reviewer), decision.reviewer];
        if (approvers.length >= row.required_count) {
          const timeoutMs = toDate(row.expires_at).getTime() - toDate(row.requested_at).getTime();
          await trx
            .updateTable('portcullis_approvals')
            .set({
              status: 'approved',
              decided_at: at,
              decided_by: approvers.join(','),
              reason: decision.text ?? null,
              expires_at: new Date(at.getTime() + timeoutMs),
            })
            .where('id', '=', row.id)
            .execute();
        }
      }
      return { expired: false } as const;
    });
    if (result.expired) {
      await this.announce(decision.id);
      throw new ApprovalError('approval.expired', `approval ${decision.id} has expired`);
    }
    await this.announce(decision.id);
    const record = await this.get(decision.id);
    if (record === undefined) throw new ApprovalError('approval.not_found', `no approval ${decision.id}`);
    return record;
  }

  /** `pending` → `status` (expired, withdrawn); false when it was no longer pending. */
  async close(id: string, status: 'expired' | 'withdrawn', at: Date = new Date()): Promise<boolean> {
    const result = await this.db
      .updateTable('portcullis_approvals')
      .set({ status, decided_at: at })
      .where('id', '=', id)
      .where('status', '=', 'pending')
      .executeTakeFirst();
    const changed = Number(result.numUpdatedRows) > 0;
    if (changed) await this.announce(id);
    return changed;
  }

  /** `approved` → `consumed`, once: false when another call consumed it first (or it is not approved). */
  async consume(id: string, sessionId: string, at: Date = new Date()): Promise<boolean> {
    const result = await this.db
      .updateTable('portcullis_approvals')
      .set({ status: 'consumed', consumed_at: at, consumed_session: sessionId })
      .where('id', '=', id)
      .where('status', '=', 'approved')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) > 0;
  }

  /**
   * Consumes, exactly once, an approved and unexpired approval of the identical call (same subject,
   * tool and argument hash). One statement: concurrent retries cannot both get it.
   */
  async consumeMatching(call: {
    subject: string;
    namespacedTool: string;
    argsHash: string;
    sessionId: string;
    at?: Date;
  }): Promise<ApprovalRecord | undefined> {
    const at = call.at ?? new Date();
    const rows = await sql<Row>`
      update portcullis_approvals set status = 'consumed', consumed_at = ${at}, consumed_session = ${call.sessionId}
      where id = (
        select id from portcullis_approvals
        where status = 'approved' and identity_subject = ${call.subject} and namespaced_tool = ${call.namespacedTool}
          and args_hash = ${call.argsHash} and expires_at > ${at}
        order by requested_at limit 1 for update skip locked
      ) and status = 'approved'
      returning *`.execute(this.db);
    const row = rows.rows[0];
    return row === undefined ? undefined : toRecord(row, []);
  }

  /** A pending, unexpired approval of the identical call, if one exists (a retry before the decision). */
  async findPending(call: {
    subject: string;
    namespacedTool: string;
    argsHash: string;
    at?: Date;
  }): Promise<ApprovalRecord | undefined> {
    const row = await this.db
      .selectFrom('portcullis_approvals')
      .selectAll()
      .where('status', '=', 'pending')
      .where('identity_subject', '=', call.subject)
      .where('namespaced_tool', '=', call.namespacedTool)
      .where('args_hash', '=', call.argsHash)
      .where('expires_at', '>', call.at ?? new Date())
      .orderBy('requested_at')
      .executeTakeFirst();
    return row === undefined ? undefined : toRecord(row, []);
  }

  /** Tells every listening gateway that approval `id` changed. */
  async announce(id: string): Promise<void> {
    await sql`select pg_notify(${APPROVAL_CHANNEL}, ${id})`.execute(this.db).catch(() => undefined);
  }
}

/** `group sre, subject alice` */
export function describeReviewers(reviewers: ApprovalReviewers): string {
  const parts = [...reviewers.groups.map((g) => `group ${g}`), ...reviewers.subjects.map((s) => `subject ${s}`)];
  return parts.join(', ');
}

export interface ApprovalListener {
  close(): Promise<void>;
}

/**
 * LISTENs on `APPROVAL_CHANNEL` with a dedicated `pg` client (not one of the pool's), reconnecting
 * every `retryMs` after a failure. `onId` gets each announced approval id.
 */
export function listenForApprovals(
  url: string,
  onId: (id: string) => void,
  options: { retryMs?: number; onError?: (error: unknown) => void } = {},
): ApprovalListener {
  let closed = false;
  let client: pg.Client | undefined;
  let timer: NodeJS.Timeout | undefined;
  const retry = () => {
    if (closed || timer !== undefined) return;
    timer = setTimeout(() => {
      timer = undefined;
      void connect();
    }, options.retryMs ?? 2_000);
    timer.unref();
  };
  const connect = async () => {
    const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2_000 });
    next.on('error', (error) => {
      options.onError?.(error);
      if (client === next) client = undefined;
      void next.end().catch(() => undefined);
      retry();
    });
    next.on('notification', (message) => {
      if (message.channel === APPROVAL_CHANNEL && message.payload) onId(message.payload);
    });
    try {
      await next.connect();
      await next.query(`listen ${APPROVAL_CHANNEL}`);
      if (closed) {
        await next.end();
        return;
      }
      client = next;
    } catch (error) {
      options.onError?.(error);
      await next.end().catch(() => undefined);
      retry();
    }
  };
  void connect();
  return {
    close: async () => {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      await client?.end().catch(() => undefined);
    },
  };
}
