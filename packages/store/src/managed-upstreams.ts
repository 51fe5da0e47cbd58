import { sql } from 'kysely';
import { toStoreError } from './errors.js';
import type { Store } from './store.js';

/** One upstream managed at run time, as stored (the definition is validated by the caller). */
export interface ManagedUpstream {
  readonly name: string;
  /** The config file's upstream shape; secret references (`env:`, `file:`) are kept unresolved. */
  readonly definition: Record<string, unknown>;
  /** A tombstone: the upstream is removed (it also hides a config-file upstream of that name). */
  readonly removed: boolean;
  readonly revision: number;
  readonly createdAt: Date;
  readonly updatedAt: Date;
  readonly updatedBy: string;
}

/** A change to the managed upstreams, recorded in the admin audit in the same transaction. */
export interface ManagedUpstreamChange {
  readonly name: string;
  /** The new definition; `undefined` removes the upstream (a tombstone). */
  readonly definition: Record<string, unknown> | undefined;
  /** Who made the change (admin audit `actor`). */
  readonly actor: string;
  /** Admin audit action, e.g. `upstream.add`. */
  readonly action: string;
  /** Extra admin audit details (never secret values). */
  readonly details?: Record<string, unknown>;
}

interface ManagedRow {
  name: string;
  definition: unknown;
  removed: boolean;
  revision: string | number;
  created_at: Date | string;
  updated_at: Date | string;
  updated_by: string;
}

function toManaged(row: ManagedRow): ManagedUpstream {
  const definition = typeof row.definition === 'string' ? JSON.parse(row.definition) : row.definition;
  return {
    name: row.name,
    definition: (definition ?? {}) as Record<string, unknown>,
    removed: row.removed,
    revision: Number(row.revision),
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    updatedBy: row.updated_by,
  };
}

/** Every managed upstream, tombstones included, by name. */
export async function listManagedUpstreams(store: Store): Promise<ManagedUpstream[]> {
  try {
    const rows = await store.db.selectFrom('portcullis_managed_upstreams').selectAll().orderBy('name').execute();
    return rows.map((row) => toManaged(row as ManagedRow));
  } catch (error) {
    throw toStoreError(error, 'list managed upstreams');
  }
}

/** The highest revision of any managed upstream (0 when none): one cheap query, polled by gateways. */
export async function managedUpstreamsRevision(store: Store): Promise<number> {
  try {
    const row = await store.db
      .selectFrom('portcullis_managed_upstreams')
      .select((eb) => eb.fn.max('revision').as('max'))
      .executeTakeFirst();
    return Number(row?.max ?? 0);
  } catch (error) {
    throw toStoreError(error, 'managed upstreams revision');
  }
}

/**
 * Applies changes (add/set/enable/disable/remove) in one transaction, each with a new revision and
 * an admin audit row.
 */
export async function changeManagedUpstreams(
  store: Store,
  changes: readonly ManagedUpstreamChange[],
  at: number = Date.now(),
): Promise<void> {
  if (changes.length === 0) return;
  const now = new Date(at).toISOString();
  try {
    await store.db.transaction().execute(async (tx) => {
      for (const change of changes) {
        const revision = sql<string>`nextval('portcullis_upstream_revision_seq')`;
        const definition = JSON.stringify(change.definition ?? {});
        await tx
          .insertInto('portcullis_managed_upstreams')
          .values({
            name: change.name,
            definition,
            removed: change.definition === undefined,
            revision,
            created_at: now,
            updated_at: now,
            updated_by: change.actor,
          })
          .onConflict((oc) =>
            oc.column('name').doUpdateSet({
              definition,
              removed: change.definition === undefined,
              revision,
              updated_at: now,
              updated_by: change.actor,
            }),
          )
          .execute();
      }
    });
  } catch (error) {
    throw toStoreError(error, 'change managed upstreams');
  }
  for (const change of changes) {
    await store.recordAdminAction(
      { actor: change.actor, action: change.action, target: change.name, details: change.details ?? {} },
      at,
    );
  }
}

/** What one gateway instance reports about one of its upstreams. */
export interface UpstreamStatusInput {
  readonly name: string;
  readonly transport: string;
  /** connecting | connected | failing | disabled | closed */
  readonly status: string;
  readonly era?: string | undefined;
  readonly protocolVersion?: string | undefined;
  readonly lastError?: string | undefined;
  /** Names the gateway exposes for this upstream (agent-facing), per list kind. */
  readonly catalog: Readonly<Record<string, readonly string[]>>;
}

export interface PublishedUpstreamStatus extends UpstreamStatusInput {
  readonly instance: string;
  readonly reportedAt: Date;
}

/** Replaces `instance`'s published status rows with `statuses` (rows of upstreams it no longer has go). */
export async function publishUpstreamStatus(
  store: Store,
  instance: string,
  statuses: readonly UpstreamStatusInput[],
  at: number = Date.now(),
): Promise<void> {
  const now = new Date(at).toISOString();
  try {
    await store.db.transaction().execute(async (tx) => {
      await tx.deleteFrom('portcullis_upstream_status').where('instance', '=', instance).execute();
      if (statuses.length === 0) return;
      await tx
        .insertInto('portcullis_upstream_status')
        .values(
          statuses.map((s) => ({
            instance,
            name: s.name,
            transport: s.transport,
            status: s.status,
            era: s.era ?? null,
            protocol_version: s.protocolVersion ?? null,
            last_error: s.lastError ?? null,
            catalog: JSON.stringify(s.catalog),
            reported_at: now,
          })),
        )
        .execute();
    });
  } catch (error) {
    throw toStoreError(error, 'publish upstream status');
  }
}

/** Removes an instance's published rows (at shutdown). */
export async function withdrawUpstreamStatus(store: Store, instance: string): Promise<void> {
  try {
    await store.db.deleteFrom('portcullis_upstream_status').where('instance', '=', instance).execute();
  } catch (error) {
    throw toStoreError(error, 'withdraw upstream status');
  }
}

/** Every published status row reported at or after `since`, newest first. */
export async function listUpstreamStatus(store: Store, since: Date): Promise<PublishedUpstreamStatus[]> {
  try {
    const rows = await store.db
      .selectFrom('portcullis_upstream_status')
      .selectAll()
      .where('reported_at', '>=', since)
      .orderBy('reported_at', 'desc')
      .execute();
    return rows.map((row) => {
      const catalog = typeof row.catalog === 'string' ? JSON.parse(row.catalog) : row.catalog;
      return {
        instance: row.instance,
        name: row.name,
        transport: row.transport,
        status: row.status,
        era: row.era ?? undefined,
        protocolVersion: row.protocol_version ?? undefined,
        lastError: row.last_error ?? undefined,
        catalog: (catalog ?? {}) as Record<string, string[]>,
        reportedAt: new Date(row.reported_at),
      };
    });
  } catch (error) {
    throw toStoreError(error, 'list upstream status');
  }
}
