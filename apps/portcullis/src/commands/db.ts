import { describeError } from '@portcullis/core';
import type { Command } from 'commander';
import {
  CheckFailed,
  describeStore,
  loadConfigForCommand,
  type OutputFormat,
  openStoreForCommand,
  parseOutputFormat,
  storeOptionsFor,
} from '../session-log.js';

interface DbOptions {
  readonly config: string;
  readonly output: OutputFormat;
}

/** `portcullis db migrate|status`: the session-log database, without starting a gateway. */
export function registerDbCommands(program: Command): void {
  const db = program.command('db').description('the session-log database (Postgres or the embedded one)');

  db.command('migrate')
    .description('apply every pending migration (the gateway also does this at start)')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: DbOptions) => {
      const config = await loadConfigForCommand(options.config);
      const where = describeStore(storeOptionsFor(config));
      const store = await openStoreForCommand(config, { migrate: false });
      try {
        const { applied } = await store.migrateToLatest();
        if (options.output === 'json') {
          process.stdout.write(`${JSON.stringify({ store: where, applied })}\n`);
        } else if (applied.length === 0) {
          process.stdout.write(`${where}: already up to date\n`);
        } else {
          process.stdout.write(`${where}: applied ${applied.join(', ')}\n`);
        }
      } catch (error) {
        process.stderr.write(`portcullis: migration failed (${where}): ${describeError(error)}\n`);
        process.exitCode = 1;
      } finally {
        await store.close();
      }
    });

  db.command('status')
    .description(`list applied and pending migrations and row counts; exit ${CheckFailed} when migrations are pending`)
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: DbOptions) => {
      const config = await loadConfigForCommand(options.config);
      const where = describeStore(storeOptionsFor(config));
      const store = await openStoreForCommand(config, { migrate: false });
      try {
        const migrations = await store.status();
        const pending = migrations.filter((m) => m.executedAt === undefined).map((m) => m.name);
        const counts = pending.length === 0 ? await store.counts() : undefined;
        if (options.output === 'json') {
          process.stdout.write(
            `${JSON.stringify({
              store: where,
              migrations: migrations.map((m) => ({ name: m.name, appliedAt: m.executedAt?.toISOString() ?? null })),
              pending,
              counts: counts ?? null,
            })}\n`,
          );
        } else {
          const lines = [`store: ${where}`];
          for (const m of migrations) {
            lines.push(
              `  ${m.name}  ${m.executedAt === undefined ? 'PENDING' : `applied ${m.executedAt.toISOString()}`}`,
            );
          }
          if (counts !== undefined) {
            lines.push(`sessions: ${counts.sessions}  events: ${counts.events}  tool calls: ${counts.toolCalls}`);
          } else {
            lines.push(`${pending.length} migration(s) pending: run portcullis db migrate`);
          }
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        if (pending.length > 0) process.exitCode = CheckFailed;
      } catch (error) {
        process.stderr.write(`portcullis: cannot read the session log status (${where}): ${describeError(error)}\n`);
        process.exitCode = 1;
      } finally {
        await store.close();
      }
    });
}
