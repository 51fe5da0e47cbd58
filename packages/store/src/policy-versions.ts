import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { toStoreError } from './errors.js';
import type { Store } from './store.js';

/** One applied policy document. */
export interface PolicyVersionInfo {
  /** 1, 2, 3 … in apply order; decisions record it as `v<N>`. */
  readonly version: number;
  readonly sha256: string;
  /** The file it was applied from, as given to `policy apply`. */
  readonly source: string | undefined;
  readonly appliedAt: Date;
  readonly appliedBy: string;
  readonly active: boolean;
}

export interface StoredPolicyVersion extends PolicyVersionInfo {
  readonly document: string;
}

/** The version label recorded with decisions for stored version `n`. */
export function policyVersionLabel(version: number): string {
  return `v${version}`;
}

interface VersionRow {
  version: number;
  sha256: string;
  source: string | null;
  applied_at: Date | string;
  applied_by: string;
  active: boolean;
}

function toInfo(row: VersionRow): PolicyVersionInfo {
  return {
    version: Number(row.version),
    sha256: row.sha256,
    source: row.source ?? undefined,
    appliedAt: new Date(row.applied_at),
    appliedBy: row.applied_by,
    active: row.active,
  };
}

const INFO_COLUMNS = ['version', 'sha256', 'source', 'applied_at', 'applied_by', 'active'] as const;

/**
 * Stores `document` (already validated by the caller) as a new version and makes it the active
 * one, in one transaction: the table is locked for the numbering, the previous active version is
 * deactivated, the new one inserted — a concurrent reader sees the old version or the new one,
 * never none.
 */
export async function applyPolicyVersion(
  store: Store,
  input: { document: string; source?: string; appliedBy?: string },
): Promise<PolicyVersionInfo> {
  const sha256 = createHash('sha256').update(input.document, 'utf8').digest('hex');
  const appliedBy = input.appliedBy ?? 'cli';
  let info: PolicyVersionInfo;
  try {
    info = await store.db.transaction().execute(async (tx) => {
      await sql`lock table portcullis_policy_versions in exclusive mode`.execute(tx);
      const last = await tx
        .selectFrom('portcullis_policy_versions')
        .select((eb) => eb.fn.max('version').as('max'))
        .executeTakeFirst();
      const version = Number(last?.max ?? 0) + 1;
      await tx.updateTable('portcullis_policy_versions').set({ active: false }).where('active', '=', true).execute();
      const row = await tx
        .insertInto('portcullis_policy_versions')
        .values({
          version,
          document: input.document,
          sha256,
          source: input.source ?? null,
          applied_at: new Date().toISOString(),
          applied_by: appliedBy,
          active: true,
        })
        .returning(INFO_COLUMNS)
        .executeTakeFirstOrThrow();
      return toInfo(row);
    });
  } catch (error) {
    throw toStoreError(error, 'apply policy version');
  }
  await store
    .recordAdminAction({
      actor: appliedBy,
      action: 'policy.apply',
      target: policyVersionLabel(info.version),
      details: { sha256, source: input.source ?? null },
    })
    .catch(() => undefined);
  return info;
}

/** The active version's number, or `undefined` before any apply: a cheap query to poll. */
export async function activePolicyVersionNumber(store: Store): Promise<number | undefined> {
  try {
    const row = await store.db
      .selectFrom('portcullis_policy_versions')
      .select('version')
      .where('active', '=', true)
      .executeTakeFirst();
    return row === undefined ? undefined : Number(row.version);
  } catch (error) {
    throw toStoreError(error, 'read active policy version');
  }
}

/** The active version with its document, or `undefined` before any apply. */
export async function activePolicyVersion(store: Store): Promise<StoredPolicyVersion | undefined> {
  try {
    const row = await store.db
      .selectFrom('portcullis_policy_versions')
      .select([...INFO_COLUMNS, 'document'])
      .where('active', '=', true)
      .executeTakeFirst();
    return row === undefined ? undefined : { ...toInfo(row), document: row.document };
  } catch (error) {
    throw toStoreError(error, 'read active policy version');
  }
}

/** Every stored version, newest first (without documents). */
export async function listPolicyVersions(store: Store): Promise<PolicyVersionInfo[]> {
  try {
    const rows = await store.db
      .selectFrom('portcullis_policy_versions')
      .select(INFO_COLUMNS)
      .orderBy('version', 'desc')
      .execute();
    return rows.map(toInfo);
  } catch (error) {
    throw toStoreError(error, 'list policy versions');
  }
}
