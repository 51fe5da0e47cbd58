import type { Identity } from '@portcullis/core';
import { type AdminApi, AdminApiError } from '@portcullis/front';
import {
  ApprovalError,
  type ApprovalErrorCode,
  type ApprovalRecord,
  type ApprovalStatus,
  ApprovalStore,
  isNamedReviewer,
  type Store,
} from '@portcullis/store';

export const APPROVAL_STATUSES: readonly ApprovalStatus[] = [
  'pending',
  'approved',
  'denied',
  'expired',
  'withdrawn',
  'consumed',
];

/** An approval as JSON (dates as ISO strings): what `--output json` prints and the admin API sends. */
export function approvalToJson(record: ApprovalRecord): Record<string, unknown> {
  return {
    ...record,
    requestedAt: record.requestedAt.toISOString(),
    expiresAt: record.expiresAt.toISOString(),
    decidedAt: record.decidedAt?.toISOString() ?? null,
    consumedAt: record.consumedAt?.toISOString() ?? null,
    votes: record.votes.map((v) => ({ ...v, decidedAt: v.decidedAt.toISOString() })),
  };
}

type JsonApproval = Omit<ApprovalRecord, 'requestedAt' | 'expiresAt' | 'decidedAt' | 'consumedAt' | 'votes'> & {
  requestedAt: string;
  expiresAt: string;
  decidedAt: string | null;
  consumedAt: string | null;
  votes: Array<Omit<ApprovalRecord['votes'][number], 'decidedAt'> & { decidedAt: string }>;
};

/** The inverse of `approvalToJson` (for the CLI reading the admin API). */
export function approvalFromJson(value: unknown): ApprovalRecord {
  const json = value as JsonApproval;
  return {
    ...json,
    requestedAt: new Date(json.requestedAt),
    expiresAt: new Date(json.expiresAt),
    decidedAt: json.decidedAt === null ? null : new Date(json.decidedAt),
    consumedAt: json.consumedAt === null ? null : new Date(json.consumedAt),
    votes: json.votes.map((v) => ({ ...v, decidedAt: new Date(v.decidedAt) })),
  };
}

const STATUS_OF: Record<ApprovalErrorCode, number> = {
  'approval.not_found': 404,
  'approval.expired': 409,
  'approval.decided': 409,
  'approval.self': 403,
  'approval.not_reviewer': 403,
};

function mapped(error: unknown): unknown {
  return error instanceof ApprovalError
    ? new AdminApiError(STATUS_OF[error.reason], error.reason, error.message)
    : error;
}

/**
 * The admin API over the session-log store. Reviewers are the authenticated identity (the API key's
 * name and groups): the store's checks (not their own call, only the reviewers the rule names)
 * apply to it, and every decision is written to the admin audit with that identity as the actor.
 */
export function createAdminApi(store: Store): AdminApi {
  const approvals = new ApprovalStore(store.db);
  const decide = async (identity: Identity, id: string, verdict: 'approve' | 'deny', text: string | undefined) => {
    let record: ApprovalRecord;
    try {
      record = await approvals.decide({
        id,
        reviewer: identity.subject,
        reviewerGroups: identity.groups,
        verdict,
        text,
      });
    } catch (error) {
      throw mapped(error);
    }
    await store
      .recordAdminAction({
        actor: identity.subject,
        action: `approval.${verdict}`,
        target: id,
        details: { groups: [...identity.groups], via: 'admin-api', text: text ?? null, status: record.status },
      })
      .catch(() => undefined);
    return approvalToJson(record);
  };
  // An approval holds another agent's call arguments: a key sees only the approvals it may decide
  // (the rule names it as a reviewer) and the ones its own calls asked for.
  const visible = (identity: Identity) => (record: ApprovalRecord) =>
    record.subject === identity.subject || isNamedReviewer(record.reviewers, identity.subject, identity.groups);
  return {
    approvals: {
      list: async (identity, filter) => {
        const status = filter.status ?? 'pending';
        if (status === 'all') return (await approvals.list({})).filter(visible(identity)).map(approvalToJson);
        const known = APPROVAL_STATUSES.find((s) => s === status);
        if (known === undefined) {
          throw new AdminApiError(
            400,
            'status.invalid',
            `a status is one of ${APPROVAL_STATUSES.join(', ')} or all, not "${status}"`,
          );
        }
        return (await approvals.list({ status: known })).filter(visible(identity)).map(approvalToJson);
      },
      get: async (identity, id) => {
        const record = await approvals.get(id);
        // One the caller may not see is answered like one that does not exist.
        if (record === undefined || !visible(identity)(record)) {
          throw new AdminApiError(404, 'approval.not_found', `no approval ${id}`);
        }
        return approvalToJson(record);
      },
      approve: (identity, id, body) => decide(identity, id, 'approve', body.note),
      deny: (identity, id, body) => decide(identity, id, 'deny', body.reason),
    },
  };
}
