import { describeError } from '@portcullis/core';
import { listSessions, parseDuration, type SessionSummary } from '@portcullis/store';
import { type Command, InvalidArgumentError } from 'commander';
import {
  describeStore,
  loadConfigForCommand,
  type OutputFormat,
  openStoreForCommand,
  parseOutputFormat,
  storeOptionsFor,
} from '../session-log.js';

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

/** `portcullis sessions list`: recorded agent sessions, newest first. */
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
}
