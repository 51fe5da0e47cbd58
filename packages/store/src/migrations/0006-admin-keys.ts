import type { Kysely, Migration } from 'kysely';

/**
 * An admin API key (`portcullis keys create --admin`) may manage the gateway through the admin API
 * (upstreams, apply). Every key issued before this migration is not an admin.
 */
export const adminKeysMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema
      .alterTable('portcullis_api_keys')
      .addColumn('admin', 'boolean', (c) => c.notNull().defaultTo(false))
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('portcullis_api_keys').dropColumn('admin').execute();
  },
};
