import { describeError } from '@portcullis/core';
import { listSessions, type PruneReport, parseDuration, type SessionSummary, type Store } from '@portcullis/store';
import { type Command, InvalidArgumentError } from 'commander';
import {
  describeStore,
  loadConfigForCommand,
  type OutputFormat,
  openStoreForCommand,
  parseOutputFormat,
  storeOptionsFor,
} from '../session-log.js';
import { confirm, progressBar } from '../terminal.js';
import { defaultActor } from './upstream.js';

/** Exit codes of `portcullis sessions`: 0 done, 1 runtime failure (store), 2 bad usage or no confirmation. */
export const SessionsExit = { Ok: 0, Failure: 1, BadInput: 2 } as const;

const DECISIONS = ['allow', 'deny', 'approve', 'confirm', 'hide'] as const;

function parseDecision(value: string): string {
  if ((DECISIONS as readonly string[]).includes(value)) return value;
  throw new InvalidArgumentError(`a decision is one of ${DECISIONS.join(', ')}`);
}

function parseSince(value: string): Date {
  const asDate = Date.parse(value);
  if (/^\d{4}-\d{2}-\d{2}/.test(value) && !Number.isNaN(asDate)) return new Date(asDate);
  try {
    return new Date(Date.now() - parseDuration(value));
  } catch {
    throw new InvalidArgumentError('a duration (30m, 1h, 7d) or an ISO date');
  }
}

function parseLimit(value: string): number {
  const limit = Number(value);
  if (!Number.isInteger(limit) || limit < 1) throw new InvalidArgumentError('a positive integer');
  return limit;
}

/** Renders rows as an aligned text table (no colour: tables are read and grepped alike). */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

function shortTime(isoTime: string | null): string {
  return isoTime === null ? '-' : isoTime.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

function sessionRow(session: SessionSummary): string[] {
  return [
    session.id,
    shortTime(session.startedAt),
    session.endedAt === null ? 'open' : (session.endReason ?? 'ended'),
    session.identity,
    session.clientName ?? '-',
    `${session.era}/${session.frontTransport}`,
    String(session.toolCalls),
    String(session.denied),
    session.upstreams.join(',') || '-',
    session.replayOf === null ? '' : `replay of ${session.replayOf}`,
  ];
}

interface ListOptions {
  readonly config: string;
  readonly identity?: string;
  readonly upstream?: string;
  readonly tool?: string;
  readonly since?: Date;
  readonly decision?: string;
  readonly limit: number;
  readonly output: OutputFormat;
}

interface PruneOptions {
  readonly config: string;
  readonly olderThan?: string;
  readonly dryRun?: boolean;
  readonly yes?: boolean;
  readonly as?: string;
  readonly batchSize: number;
  readonly output: OutputFormat;
}

function usageError(message: string): never {
  process.stderr.write(`portcullis: ${message}\n`);
  process.exit(SessionsExit.BadInput);
}

function counts(report: PruneReport): string {
  return `${report.sessions} session(s), ${report.events} event(s), ${report.toolCalls} tool call(s)`;
}

/** `portcullis sessions list` (recorded agent sessions, newest first) and `sessions prune`. */
export function registerSessionsCommands(program: Command): void {
  const sessions = program.command('sessions').description('recorded agent sessions (the session log)');
  sessions
    .command('list')
    .description('list recorded sessions, newest first, filtered by identity, upstream, tool, time or decision')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--identity <subject>', 'sessions of this identity')
    .option('--upstream <name>', 'sessions with a tool call routed to this upstream')
    .option('--tool <name>', 'sessions that called this tool (namespaced or as the upstream names it)')
    .option('--since <when>', 'sessions started within this duration (30m, 1h, 7d) or since an ISO date', parseSince)
    .option(
      '--decision <decision>',
      `sessions with a tool call of this decision (${DECISIONS.join('|')})`,
      parseDecision,
    )
    .option('--limit <n>', 'at most this many sessions', parseLimit, 50)
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: ListOptions) => {
      const config = await loadConfigForCommand(options.config);
      const where = describeStore(storeOptionsFor(config));
      const store = await openStoreForCommand(config, { migrate: false });
      try {
        const found = await listSessions(store.db, {
          identity: options.identity,
          upstream: options.upstream,
          tool: options.tool,
          since: options.since,
          decision: options.decision,
          limit: options.limit,
        });
        if (options.output === 'json') {
          process.stdout.write(`${JSON.stringify({ store: where, sessions: found })}\n`);
        } else if (found.length === 0) {
          process.stdout.write(`no sessions match (${where})\n`);
        } else {
          const header = [
            'SESSION',
            'STARTED',
            'STATE',
            'IDENTITY',
            'CLIENT',
            'ERA',
            'CALLS',
            'DENIED',
            'UPSTREAMS',
            '',
          ];
          process.stdout.write(`${table(header, found.map(sessionRow))}\n`);
        }
      } catch (error) {
        process.stderr.write(`portcullis: cannot list sessions (${where}): ${describeError(error)}\n`);
        process.exitCode = 1;
      } finally {
        await store.close();
      }
    });

  sessions
    .command('prune')
    .description('delete whole sessions that ended before a duration ago (asks first on a terminal)')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--older-than <duration>', 'sessions that ended (or, still open, were last active) this long ago: 30d, 12h')
    .option('--dry-run', 'count what would be deleted and delete nothing')
    .option('--yes', 'delete without asking (required when not on a terminal)')
    .option('--as <name>', 'who prunes, for the admin audit (default: the OS user)')
    .option('--batch-size <n>', 'sessions deleted per transaction', parseLimit, 100)
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: PruneOptions) => {
      if (options.olderThan === undefined) usageError('sessions prune needs --older-than DURATION (e.g. 30d, 12h)');
      let ageMs: number;
      try {
        ageMs = parseDuration(options.olderThan);
      } catch (error) {
        usageError(describeError(error));
      }
      const config = await loadConfigForCommand(options.config);
      const where = describeStore(storeOptionsFor(config));
      const store = await openStoreForCommand(config, { migrate: false });
      try {
        process.exitCode = await prune(store, where, new Date(Date.now() - ageMs), options);
      } catch (error) {
        process.stderr.write(`portcullis: cannot prune sessions (${where}): ${describeError(error)}\n`);
        process.exitCode = SessionsExit.Failure;
      } finally {
        await store.close();
      }
    });
}

async function prune(store: Store, where: string, cutoff: Date, options: PruneOptions): Promise<number> {
  const plan = await store.planPrune({ olderThan: cutoff });
  const json = options.output === 'json';
  const summary = { store: where, olderThan: options.olderThan, cutoff: cutoff.toISOString() };
  const planned = { sessions: plan.sessions, events: plan.events, toolCalls: plan.toolCalls };
  if (options.dryRun === true || plan.sessions === 0) {
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ ...summary, dryRun: options.dryRun === true, ...planned, deleted: false })}\n`,
      );
    } else if (plan.sessions === 0) {
      process.stdout.write(`nothing to prune: no session ended before ${summary.cutoff} (${where})\n`);
    } else {
      process.stdout.write(
        `would delete ${counts(plan)} ended before ${summary.cutoff} (${where}); dry run, nothing deleted\n`,
      );
    }
    return SessionsExit.Ok;
  }
  if (!json) process.stdout.write(`${counts(plan)} ended before ${summary.cutoff} (${where})\n`);
  if (options.yes !== true) {
    if (process.stdin.isTTY !== true || process.stderr.isTTY !== true) {
      process.stderr.write(
        'portcullis: sessions prune asks for confirmation on a terminal: pass --yes to prune here\n',
      );
      return SessionsExit.BadInput;
    }
    if (!(await confirm(`Delete ${plan.sessions} session(s) and their events and tool calls? [y/N] `))) {
      process.stderr.write('portcullis: not confirmed; nothing was deleted\n');
      return SessionsExit.BadInput;
    }
  }
  const actor = options.as ?? defaultActor();
  const bar = progressBar(plan.sessions);
  let deleted: PruneReport = { sessions: 0, events: 0, toolCalls: 0 };
  let failure: unknown;
  // Ctrl-C (or SIGTERM) lets the running batch commit, then stops: the audit entry is still written.
  const interrupt = new AbortController();
  const onSignal = () => interrupt.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    deleted = await store.pruneSessions({
      olderThan: cutoff,
      batchSize: options.batchSize,
      signal: interrupt.signal,
      onProgress: (sofar) => {
        deleted = sofar;
        bar.tick(sofar.sessions, `${sofar.events} event(s)`);
      },
    });
  } catch (error) {
    failure = error;
  } finally {
    bar.end();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
  if (failure === undefined && interrupt.signal.aborted && deleted.sessions < plan.sessions) {
    failure = new Error(`interrupted after deleting ${counts(deleted)}`);
  }
  // Recorded whatever happened: a failed or interrupted prune may have committed some batches.
  await store.recordAdminAction({
    actor,
    action: 'sessions.prune',
    details: {
      ...summary,
      planned,
      deleted,
      batchSize: options.batchSize,
      ...(failure !== undefined ? { error: describeError(failure) } : {}),
    },
  });
  if (failure !== undefined) throw failure;
  if (json) {
    process.stdout.write(`${JSON.stringify({ ...summary, dryRun: false, ...deleted, deleted: true })}\n`);
  } else {
    process.stdout.write(`deleted ${counts(deleted)}\n`);
  }
  return SessionsExit.Ok;
}
