import { type Kysely, type Migration, sql } from 'kysely';

/**
 * Upstreams managed at run time (`portcullis upstream add|set|enable|disable|remove`, `apply`):
 * the store is their source of truth and every gateway sharing it polls `revision`. A removed
 * upstream stays as a tombstone (`removed`) so that it also hides a config-file upstream of the
 * same name and `revision` only ever grows. `portcullis_upstream_status` is what each running
 * gateway instance publishes about its upstreams (status, era, catalog names), read by the CLI.
 */
export const upstreamAdminMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await sql`create sequence if not exists portcullis_upstream_revision_seq`.execute(db);
    await db.schema
      .createTable('portcullis_managed_upstreams')
      .addColumn('name', 'text', (c) => c.primaryKey())
      // The definition as given (the config file's upstream shape), secret references unresolved.
      .addColumn('definition', 'jsonb', (c) => c.notNull())
      .addColumn('removed', 'boolean', (c) => c.notNull().defaultTo(false))
      .addColumn('revision', 'bigint', (c) => c.notNull())
      .addColumn('created_at', 'timestamptz', (c) => c.notNull())
      .addColumn('updated_at', 'timestamptz', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createTable('portcullis_upstream_status')
      .addColumn('instance', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('transport', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('era', 'text')
      .addColumn('protocol_version', 'text')
      .addColumn('last_error', 'text')
      .addColumn('catalog', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
      .addColumn('reported_at', 'timestamptz', (c) => c.notNull())
      .addPrimaryKeyConstraint('portcullis_upstream_status_pk', ['instance', 'name'])
      .execute();
    await db.schema
      .createIndex('portcullis_upstream_status_name')
      .on('portcullis_upstream_status')
      .columns(['name', 'reported_at'])
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropTable('portcullis_upstream_status').ifExists().execute();
    await db.schema.dropTable('portcullis_managed_upstreams').ifExists().execute();
    await sql`drop sequence if exists portcullis_upstream_revision_seq`.execute(db);
  },
};
