import { type Kysely, type Migration, type MigrationProvider, sql } from 'kysely';
import { identityAndPolicy } from './migrations/0002-identity-and-policy.js';
import { approvalsMigration } from './migrations/0003-approvals.js';
import { upstreamAdminMigration } from './migrations/0004-upstream-admin.js';
import { replayLinkMigration } from './migrations/0005-replay-link.js';
import { adminKeysMigration } from './migrations/0006-admin-keys.js';

/**
 * The schema, as code. Each migration runs unchanged on a real Postgres and on PGlite.
 * Never edit a migration that has shipped: add a new one.
 */
const migrations: Record<string, Migration> = {
  '0005_replay_link': replayLinkMigration,
  '0006_admin_keys': adminKeysMigration,
  '0003_approvals': approvalsMigration,
  '0001_session_log': {
    async up(db: Kysely<unknown>): Promise<void> {
      await db.schema
        .createTable('portcullis_sessions')
        .addColumn('id', 'text', (c) => c.primaryKey())
        .addColumn('gateway_instance', 'text', (c) => c.notNull())
        .addColumn('identity_subject', 'text', (c) => c.notNull())
        .addColumn('identity_groups', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
        .addColumn('auth_method', 'text', (c) => c.notNull())
        .addColumn('client_name', 'text')
        .addColumn('client_version', 'text')
        .addColumn('era', 'text', (c) => c.notNull())
        .addColumn('protocol_version', 'text', (c) => c.notNull())
        .addColumn('front_transport', 'text', (c) => c.notNull())
        .addColumn('remote_address', 'text')
        .addColumn('started_at', 'timestamptz', (c) => c.notNull())
        .addColumn('ended_at', 'timestamptz')
        .addColumn('end_reason', 'text')
        // Set at session end: the chain's length and last hash, so a truncated tail is detected too.
        .addColumn('event_count', 'integer')
        .addColumn('head_hash', 'text')
        .execute();
      await db.schema
        .createIndex('portcullis_sessions_identity_time')
        .on('portcullis_sessions')
        .columns(['identity_subject', 'started_at'])
        .execute();
      await db.schema
        .createIndex('portcullis_sessions_started')
        .on('portcullis_sessions')
        .column('started_at')
        .execute();

      await db.schema
        .createTable('portcullis_events')
        // No foreign key to sessions: rows arrive in batches and from spool replay in any order;
        // retention deletes whole sessions from every table explicitly.
        .addColumn('session_id', 'text', (c) => c.notNull())
        .addColumn('seq', 'integer', (c) => c.notNull().check(sql`seq > 0`))
        .addColumn('occurred_at', 'timestamptz', (c) => c.notNull())
        .addColumn('direction', 'text', (c) => c.notNull().check(sql`direction in ('from_agent', 'to_agent')`))
        .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('request', 'response', 'notification')`))
        .addColumn('method', 'text')
        .addColumn('rpc_id', 'text')
        .addColumn('upstream', 'text')
        .addColumn('payload', 'jsonb', (c) => c.notNull())
        .addColumn('size_bytes', 'integer', (c) => c.notNull())
        .addColumn('latency_ms', 'double precision')
        .addColumn('prev_hash', 'text', (c) => c.notNull())
        .addColumn('hash', 'text', (c) => c.notNull())
        // One writer owns a session, but the constraint is what keeps sequences consistent.
        .addPrimaryKeyConstraint('portcullis_events_pk', ['session_id', 'seq'])
        .execute();

      await db.schema
        .createTable('portcullis_tool_calls')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('session_id', 'text', (c) => c.notNull())
        .addColumn('rpc_id', 'text')
        .addColumn('request_seq', 'integer')
        .addColumn('identity_subject', 'text', (c) => c.notNull())
        .addColumn('identity_groups', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
        .addColumn('upstream', 'text')
        .addColumn('tool', 'text', (c) => c.notNull())
        .addColumn('namespaced_tool', 'text', (c) => c.notNull())
        .addColumn('arguments', 'jsonb', (c) => c.notNull())
        .addColumn('decision', 'text', (c) => c.notNull())
        .addColumn('decision_rule', 'text')
        .addColumn('approval_ref', 'text')
        .addColumn('forwarded', 'boolean', (c) => c.notNull())
        .addColumn('requested_at', 'timestamptz', (c) => c.notNull())
        .addColumn('completed_at', 'timestamptz')
        .addColumn('outcome', 'text', (c) => c.check(sql`outcome in ('result', 'tool_error', 'rpc_error')`))
        .addColumn('result', 'jsonb')
        .addColumn('is_error', 'boolean')
        .addColumn('error_code', 'integer')
        .addColumn('error_message', 'text')
        .addColumn('duration_ms', 'double precision')
        .addColumn('redaction', 'jsonb')
        .execute();
      await db.schema
        .createIndex('portcullis_tool_calls_session')
        .on('portcullis_tool_calls')
        .columns(['session_id', 'requested_at'])
        .execute();
      await db.schema
        .createIndex('portcullis_tool_calls_tool_time')
        .on('portcullis_tool_calls')
        .columns(['namespaced_tool', 'requested_at'])
        .execute();
      await db.schema
        .createIndex('portcullis_tool_calls_identity_time')
        .on('portcullis_tool_calls')
        .columns(['identity_subject', 'requested_at'])
        .execute();

      await db.schema
        .createTable('portcullis_upstreams')
        .addColumn('name', 'text', (c) => c.primaryKey())
        .addColumn('transport', 'text', (c) => c.notNull())
        .addColumn('target', 'text')
        .addColumn('first_seen_at', 'timestamptz', (c) => c.notNull())
        .addColumn('last_seen_at', 'timestamptz', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('portcullis_admin_audit')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('occurred_at', 'timestamptz', (c) => c.notNull())
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target', 'text')
        .addColumn('details', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
        .execute();
      await db.schema
        .createIndex('portcullis_admin_audit_time')
        .on('portcullis_admin_audit')
        .column('occurred_at')
        .execute();
    },
    async down(db: Kysely<unknown>): Promise<void> {
      for (const table of [
        'portcullis_admin_audit',
        'portcullis_upstreams',
        'portcullis_tool_calls',
        'portcullis_events',
        'portcullis_sessions',
      ]) {
        await db.schema.dropTable(table).ifExists().execute();
      }
    },
  },
  '0002_identity_and_policy': identityAndPolicy,
  '0004_upstream_admin': upstreamAdminMigration,
};

export const migrationProvider: MigrationProvider = {
  getMigrations: () => Promise.resolve(migrations),
};

/** Migration bookkeeping tables, kept apart from any other application's kysely migrations. */
export const MIGRATION_TABLE = 'portcullis_migration';
export const MIGRATION_LOCK_TABLE = 'portcullis_migration_lock';
