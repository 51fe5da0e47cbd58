import { type Kysely, type Migration, sql } from 'kysely';

/**
 * Gateway-issued API keys (only a hash of each secret is stored) and applied policy versions (kept;
 * at most one active), plus the policy version each tool call was decided by.
 */
export const identityAndPolicy: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .createTable('portcullis_api_keys')
      .addColumn('id', 'uuid', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull())
      // The key's recognisable start (`pcs_` and a few characters), to tell keys apart in lists.
      .addColumn('prefix', 'text', (c) => c.notNull())
      // sha256 of the whole secret, hex. Keys are 256-bit random, so a fast hash is enough.
      .addColumn('secret_hash', 'text', (c) => c.notNull().unique())
      .addColumn('groups', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
      .addColumn('created_at', 'timestamptz', (c) => c.notNull())
      .addColumn('revoked_at', 'timestamptz')
      .addColumn('last_used_at', 'timestamptz')
      .execute();
    // A name names one live key; a revoked key's name may be issued again.
    await sql`create unique index portcullis_api_keys_live_name on portcullis_api_keys (name) where revoked_at is null`.execute(
      db,
    );

    await db.schema
      .createTable('portcullis_policy_versions')
      .addColumn('version', 'integer', (c) => c.primaryKey())
      .addColumn('document', 'text', (c) => c.notNull())
      .addColumn('sha256', 'text', (c) => c.notNull())
      .addColumn('source', 'text')
      .addColumn('applied_at', 'timestamptz', (c) => c.notNull())
      .addColumn('applied_by', 'text', (c) => c.notNull())
      .addColumn('active', 'boolean', (c) => c.notNull().defaultTo(false))
      .execute();
    // One active version at most.
    await sql`create unique index portcullis_policy_versions_one_active on portcullis_policy_versions (active) where active`.execute(
      db,
    );

    await db.schema.alterTable('portcullis_tool_calls').addColumn('policy_version', 'text').execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('portcullis_tool_calls').dropColumn('policy_version').execute();
    await db.schema.dropTable('portcullis_policy_versions').ifExists().execute();
    await db.schema.dropTable('portcullis_api_keys').ifExists().execute();
  },
};
