import { type Kysely, type Migration, sql } from 'kysely';

/**
 * Approval holds: one row per held call (`portcullis_approvals`) and one per reviewer's decision
 * (`portcullis_approval_votes`). Session-log events get the kind `approval` (requested, approved,
 * denied, expired, withdrawn, consumed). Runs unchanged on Postgres and PGlite.
 */
export const approvalsMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('portcullis_approvals')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('status', 'text', (c) =>
        c.notNull().check(sql`status in ('pending', 'approved', 'denied', 'expired', 'withdrawn', 'consumed')`),
      )
      .addColumn('mode', 'text', (c) => c.notNull())
      .addColumn('session_id', 'text', (c) => c.notNull())
      .addColumn('rpc_id', 'text')
      .addColumn('gateway_instance', 'text', (c) => c.notNull())
      .addColumn('identity_subject', 'text', (c) => c.notNull())
      .addColumn('identity_groups', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
      .addColumn('upstream', 'text', (c) => c.notNull())
      .addColumn('tool', 'text', (c) => c.notNull())
      .addColumn('namespaced_tool', 'text', (c) => c.notNull())
      .addColumn('arguments', 'jsonb', (c) => c.notNull())
      .addColumn('args_hash', 'text', (c) => c.notNull())
      .addColumn('rule', 'text')
      .addColumn('policy_version', 'text')
      .addColumn('reviewers', 'jsonb', (c) => c.notNull())
      .addColumn('required_count', 'integer', (c) => c.notNull().check(sql`required_count > 0`))
      .addColumn('on_timeout', 'text', (c) => c.notNull())
      .addColumn('webhook', 'text')
      .addColumn('requested_at', 'timestamptz', (c) => c.notNull())
      .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
      .addColumn('decided_at', 'timestamptz')
      .addColumn('decided_by', 'text')
      .addColumn('reason', 'text')
      .addColumn('consumed_at', 'timestamptz')
      .addColumn('consumed_session', 'text')
      .execute();
    await db.schema
      .createIndex('portcullis_approvals_status_time')
      .on('portcullis_approvals')
      .columns(['status', 'requested_at'])
      .execute();
    await db.schema
      .createIndex('portcullis_approvals_call')
      .on('portcullis_approvals')
      .columns(['identity_subject', 'namespaced_tool', 'args_hash'])
      .execute();
    await db.schema
      .createTable('portcullis_approval_votes')
      .addColumn('approval_id', 'text', (c) => c.notNull())
      .addColumn('reviewer', 'text', (c) => c.notNull())
      .addColumn('reviewer_groups', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
      .addColumn('verdict', 'text', (c) => c.notNull().check(sql`verdict in ('approve', 'deny')`))
      .addColumn('note', 'text')
      .addColumn('decided_at', 'timestamptz', (c) => c.notNull())
      .addPrimaryKeyConstraint('portcullis_approval_votes_pk', ['approval_id', 'reviewer'])
      .execute();
    await sql`alter table portcullis_events drop constraint if exists portcullis_events_kind_check`.execute(db);
    await sql`alter table portcullis_events add constraint portcullis_events_kind_check check (kind in ('request', 'response', 'notification', 'approval'))`.execute(
      db,
    );
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await sql`alter table portcullis_events drop constraint if exists portcullis_events_kind_check`.execute(db);
    await sql`alter table portcullis_events add constraint portcullis_events_kind_check check (kind in ('request', 'response', 'notification'))`.execute(
      db,
    );
    await db.schema.dropTable('portcullis_approval_votes').ifExists().execute();
    await db.schema.dropTable('portcullis_approvals').ifExists().execute();
  },
};
