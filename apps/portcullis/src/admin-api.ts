import type { Config, UpstreamConfig } from '@portcullis/config';
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
import { CommandFailed, STATUS_OF_EXIT } from './admin-client.js';
import { type UpstreamAdmin, unredactUpstreamConfig } from './upstream-admin.js';
import {
  type ChangeActor,
  checkName,
  currentUpstreams,
  parseDefinition,
  storeBackend,
  type UpstreamBackend,
  UpstreamExit,
} from './upstream-ops.js';

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

export interface AdminApiOptions {
  readonly store: Store;
  /** The gateway's configuration: its `upstreams:` are the base the store's managed upstreams change. */
  readonly config: Config;
  /** The gateway's follower of the managed upstreams: a change made here is applied before the answer. */
  readonly upstreams: UpstreamAdmin;
}

/** `document.upstreams` of an `apply` body, each entry validated (400 naming the first problem). */
function desiredUpstreams(document: Record<string, unknown>): Map<string, UpstreamConfig> {
  const upstreams = document.upstreams;
  if (typeof upstreams !== 'object' || upstreams === null || Array.isArray(upstreams))
    throw new CommandFailed(UpstreamExit.BadInput, '"document.upstreams" must be an object of upstreams by name');
  const desired = new Map<string, UpstreamConfig>();
  for (const [name, raw] of Object.entries(upstreams)) {
    checkName(name);
    try {
      desired.set(name, parseDefinition(raw));
    } catch (error) {
      if (error instanceof CommandFailed)
        throw new CommandFailed(error.exitCode, `upstreams.${name}: ${error.message}`, error.reason);
      throw error;
    }
  }
  return desired;
}

/**
 * The admin API over the session-log store. Reviewers are the authenticated identity (the API key's
 * name and groups): the store's checks (not their own call, only the reviewers the rule names)
 * apply to it, and every decision is written to the admin audit with that identity as the actor.
 * Upstreams and `apply` are for admin identities only; each change is recorded in the admin audit
 * with the identity as the actor (`via: admin-api`) and applied by this gateway before the answer
 * (others sharing the store follow within about a second).
 */
export function createAdminApi(options: AdminApiOptions): AdminApi {
  const { store, config, upstreams: follower } = options;
  /**
   * Runs an upstream operation for `identity` if it is an admin (else 403 `admin.required`), with
   * the identity as the actor and this gateway applying each change before the answer.
   */
  const asAdmin = async <T>(identity: Identity, work: (backend: UpstreamBackend) => Promise<T>): Promise<T> => {
    if (identity.admin !== true)
      throw new AdminApiError(
        403,
        'admin.required',
        `the API key "${identity.subject}" is no admin: managing upstreams needs an admin key (keys create --admin) or one in auth.adminGroups`,
      );
    const by: ChangeActor = { actor: identity.subject, via: 'admin-api' };
    try {
      return await work(storeBackend(config, store, by, { live: follower.liveStatus, changed: follower.refresh }));
    } catch (error) {
      const status = error instanceof CommandFailed ? STATUS_OF_EXIT[error.exitCode] : undefined;
      if (!(error instanceof CommandFailed) || status === undefined) throw error;
      throw new AdminApiError(status, error.reason ?? 'invalid', error.message);
    }
  };
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
    upstreams: {
      list: (identity) => asAdmin(identity, (backend) => backend.list()),
      get: (identity, name) => asAdmin(identity, (backend) => backend.show(name)),
      test: (identity, name, body) => asAdmin(identity, (backend) => backend.test(name, body.timeoutMs ?? 15_000)),
      put: (identity, name, raw, { onlyCreate }) =>
        asAdmin(identity, async (backend) => {
          const stored = (await currentUpstreams(config, store)).find((upstream) => upstream.name === name);
          const { config: definition, missing } = unredactUpstreamConfig(parseDefinition(raw), stored?.config);
          if (missing.length > 0)
            throw new CommandFailed(
              UpstreamExit.BadInput,
              `"[redacted]" stands for a stored value, and ${missing.join(', ')} has none: give the value`,
              'upstream.invalid',
            );
          return { name, action: await backend.put(name, definition, onlyCreate) };
        }),
      setEnabled: (identity, name, enabled) =>
        asAdmin(identity, async (backend) => {
          await backend.setEnabled(name, enabled);
          return { name, action: enabled ? 'upstream.enable' : 'upstream.disable' };
        }),
      remove: (identity, name) =>
        asAdmin(identity, async (backend) => {
          await backend.remove(name);
          return { name, action: 'upstream.remove' };
        }),
    },
    apply: (identity, body) =>
      asAdmin(identity, (backend) =>
        backend.apply(desiredUpstreams(body.document), body.source ?? 'admin-api', body.dryRun),
      ),
  };
}
