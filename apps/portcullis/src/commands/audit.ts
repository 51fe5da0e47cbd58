import { describeError } from '@portcullis/core';
import type { Store } from '@portcullis/store';
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

/** `portcullis audit verify`: recomputes the session log's hash chains. */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the tamper-evident session log');

  audit
    .command('verify')
    .description(`recompute the hash chains; exit ${CheckFailed} naming each broken session's first broken link`)
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--session <id>', 'verify one session only')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: { config: string; session?: string; output: OutputFormat }) => {
      const config = await loadConfigForCommand(options.config);
      const where = describeStore(storeOptionsFor(config));
      const store = await openStoreForCommand(config, { migrate: false });
      try {
        if (options.session !== undefined && !(await sessionExists(store, options.session))) {
          process.stderr.write(`portcullis: no session ${options.session} in the session log (${where})\n`);
          process.exitCode = CheckFailed;
          return;
        }
        const report = await store.verifyChains(options.session !== undefined ? { sessionId: options.session } : {});
        if (options.output === 'json') {
          process.stdout.write(`${JSON.stringify({ store: where, ...report })}\n`);
        } else if (report.ok) {
          process.stdout.write(
            `ok: ${report.sessionsChecked} session(s), ${report.eventsChecked} event(s) verified (${where})\n`,
          );
        } else {
          const lines = report.broken.map(
            (link) => `BROKEN session ${link.sessionId} at seq ${link.seq}: ${link.reason}`,
          );
          lines.push(
            `${report.broken.length} of ${report.sessionsChecked} session(s) broken, ${report.eventsChecked} event(s) verified (${where})`,
          );
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        if (!report.ok) process.exitCode = CheckFailed;
      } catch (error) {
        process.stderr.write(`portcullis: cannot verify the session log (${where}): ${describeError(error)}\n`);
        process.exitCode = 1;
      } finally {
        await store.close();
      }
    });
}

/** A session has a row, or at least events (its start may still be in a spool somewhere). */
async function sessionExists(store: Store, sessionId: string): Promise<boolean> {
  const session = await store.db
    .selectFrom('portcullis_sessions')
    .select('id')
    .where('id', '=', sessionId)
    .executeTakeFirst();
  if (session !== undefined) return true;
  const event = await store.db
    .selectFrom('portcullis_events')
    .select('seq')
    .where('session_id', '=', sessionId)
    .limit(1)
    .executeTakeFirst();
  return event !== undefined;
}
