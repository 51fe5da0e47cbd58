import type { Kysely, Migration } from 'kysely';

/**
 * `portcullis replay --execute` records its re-run as a session of its own; `replay_of` names the
 * session it re-ran (null for every agent session).
 */
export const replayLinkMigration: Migration = {
  async up(db: Kysely<unknown>): Promise<void> {
    await db.schema.alterTable('portcullis_sessions').addColumn('replay_of', 'text').execute();
    await db.schema
      .createIndex('portcullis_sessions_replay_of')
      .on('portcullis_sessions')
      .column('replay_of')
      .execute();
  },
  async down(db: Kysely<unknown>): Promise<void> {
    await db.schema.dropIndex('portcullis_sessions_replay_of').ifExists().execute();
    await db.schema.alterTable('portcullis_sessions').dropColumn('replay_of').execute();
  },
};
