import { describeError } from '@portcullis/core';
import {
  ApprovalError,
  type ApprovalRecord,
  type ApprovalStatus,
  ApprovalStore,
  describeReviewers,
  type Store,
} from '@portcullis/store';
import { type Command, InvalidArgumentError } from 'commander';
import {
  CheckFailed,
  loadConfigForCommand,
  type OutputFormat,
  openStoreForCommand,
  parseOutputFormat,
} from '../session-log.js';

/**
 * Exit codes of `approvals approve|deny`, beside 0 (decided), 1 (runtime failure) and 2 (bad usage
 * or configuration): 3 the approval is unknown, expired or already decided; 4 the reviewer may not
 * decide it (their own call, or not a reviewer the rule names).
 */
export const ApprovalExit = { Refused: CheckFailed, NotAllowed: 4 } as const;

const STATUSES: readonly ApprovalStatus[] = ['pending', 'approved', 'denied', 'expired', 'withdrawn', 'consumed'];

function parseList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function parseStatus(value: string): ApprovalStatus | 'all' {
  if (value === 'all') return value;
  const found = STATUSES.find((s) => s === value);
  if (found === undefined) throw new InvalidArgumentError(`a status is one of ${STATUSES.join(', ')} or all`);
  return found;
}

function toJson(record: ApprovalRecord): Record<string, unknown> {
  return {
    ...record,
    requestedAt: record.requestedAt.toISOString(),
    expiresAt: record.expiresAt.toISOString(),
    decidedAt: record.decidedAt?.toISOString() ?? null,
    consumedAt: record.consumedAt?.toISOString() ?? null,
    votes: record.votes.map((v) => ({ ...v, decidedAt: v.decidedAt.toISOString() })),
  };
}

function line(record: ApprovalRecord): string {
  const args = JSON.stringify(record.arguments);
  return [
    record.id,
    record.status,
    record.subject,
    record.namespacedTool,
    args.length > 60 ? `${args.slice(0, 57)}...` : args,
    `rule ${record.rule ?? '(default)'}`,
    `reviewers ${describeReviewers(record.reviewers)}`,
    `${record.votes.filter((v) => v.verdict === 'approve').length}/${record.requiredCount}`,
    `expires ${record.expiresAt.toISOString()}`,
  ].join('  ');
}

function details(record: ApprovalRecord): string {
  const lines = [
    `approval ${record.id}: ${record.status}`,
    `call: ${record.namespacedTool} (upstream ${record.upstream}, its name ${record.tool}) by ${record.subject}${record.groups.length > 0 ? ` in groups ${record.groups.join(',')}` : ''}`,
    `arguments: ${JSON.stringify(record.arguments)}`,
    `arguments sha256: ${record.argsHash}`,
    `rule: ${record.rule ?? '(default)'}  policy version: ${record.policyVersion ?? '-'}  mode: ${record.mode}`,
    `reviewers: ${describeReviewers(record.reviewers)}; approvals needed: ${record.requiredCount}; on timeout: ${record.onTimeout}`,
    `requested: ${record.requestedAt.toISOString()}  expires: ${record.expiresAt.toISOString()}`,
    `session: ${record.sessionId}  gateway: ${record.gatewayInstance}`,
  ];
  if (record.decidedAt !== null)
    lines.push(
      `decided: ${record.decidedAt.toISOString()} by ${record.decidedBy ?? '-'}${record.reason ? `: ${record.reason}` : ''}`,
    );
  if (record.consumedAt !== null)
    lines.push(`consumed: ${record.consumedAt.toISOString()} in session ${record.consumedSession ?? '-'}`);
  for (const vote of record.votes) {
    lines.push(
      `  ${vote.verdict} by ${vote.reviewer} at ${vote.decidedAt.toISOString()}${vote.note ? `: ${vote.note}` : ''}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

async function withStore(configFile: string, work: (store: Store) => Promise<void>): Promise<void> {
  const config = await loadConfigForCommand(configFile);
  const store = await openStoreForCommand(config, { migrate: true });
  try {
    await work(store);
  } catch (error) {
    if (error instanceof ApprovalError) {
      process.stderr.write(`portcullis: ${error.message}\n`);
      process.exitCode =
        error.reason === 'approval.self' || error.reason === 'approval.not_reviewer'
          ? ApprovalExit.NotAllowed
          : ApprovalExit.Refused;
    } else {
      process.stderr.write(`portcullis: ${describeError(error)}\n`);
      process.exitCode = 1;
    }
  } finally {
    await store.close();
  }
}

interface ListOptions {
  readonly config: string;
  readonly output: OutputFormat;
  readonly status: ApprovalStatus | 'all';
  readonly watch?: boolean;
  readonly interval: number;
}

interface DecideOptions {
  readonly config: string;
  readonly as: string;
  readonly groups?: string[];
  readonly note?: string;
  readonly reason?: string;
  readonly output: OutputFormat;
}

/**
 * `portcullis approvals list|show|approve|deny`: reviewers decide held calls, directly on the store
 * (Postgres, or the embedded database with the gateway stopped). `--as` names the reviewer — a local
 * stand-in until reviewers authenticate to the gateway's admin API.
 */
export function registerApprovalCommands(program: Command): void {
  const approvals = program.command('approvals').description('held tool calls waiting for a reviewer (approval holds)');

  approvals
    .command('list')
    .description('approvals, newest first (default: pending ones)')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--status <status>', `${STATUSES.join('|')}|all`, parseStatus, 'pending' as ApprovalStatus | 'all')
    .option('--watch', 'print again whenever the list changes (until interrupted)')
    .option('--interval <ms>', 'how often --watch looks', (v) => Number(v), 1_000)
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: ListOptions) => {
      await withStore(options.config, async (store) => {
        const approvalStore = new ApprovalStore(store.db);
        const status = options.status === 'all' ? undefined : options.status;
        let last = '';
        for (;;) {
          const records = await approvalStore.list(status === undefined ? {} : { status });
          const text =
            options.output === 'json'
              ? `${JSON.stringify(records.map(toJson))}\n`
              : records.length === 0
                ? `no ${status ?? ''} approvals\n`.replace('  ', ' ')
                : `${records.map(line).join('\n')}\n`;
          if (text !== last) process.stdout.write(text);
          last = text;
          if (!options.watch) return;
          await new Promise((resolve) => setTimeout(resolve, options.interval));
        }
      });
    });

  approvals
    .command('show')
    .description('one approval: the call, its arguments and hash, the rule, reviewers and decisions')
    .argument('<id>', 'approval id')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (id: string, options: { config: string; output: OutputFormat }) => {
      await withStore(options.config, async (store) => {
        const record = await new ApprovalStore(store.db).get(id);
        if (record === undefined) throw new ApprovalError('approval.not_found', `no approval ${id}`);
        process.stdout.write(options.output === 'json' ? `${JSON.stringify(toJson(record))}\n` : details(record));
      });
    });

  const decide = (verdict: 'approve' | 'deny') => async (id: string, options: DecideOptions) => {
    await withStore(options.config, async (store) => {
      const text = verdict === 'approve' ? options.note : options.reason;
      const record = await new ApprovalStore(store.db).decide({
        id,
        reviewer: options.as,
        reviewerGroups: options.groups ?? [],
        verdict,
        text,
      });
      await store
        .recordAdminAction({
          actor: options.as,
          action: `approval.${verdict}`,
          target: id,
          details: { groups: options.groups ?? [], text: text ?? null, status: record.status },
        })
        .catch(() => undefined);
      if (options.output === 'json') process.stdout.write(`${JSON.stringify(toJson(record))}\n`);
      else if (record.status === 'pending') {
        const got = record.votes.filter((v) => v.verdict === 'approve').length;
        process.stdout.write(
          `approval ${id}: approved by ${options.as} (${got} of ${record.requiredCount}); still pending\n`,
        );
      } else process.stdout.write(`approval ${id}: ${record.status} by ${options.as}\n`);
    });
  };

  approvals
    .command('approve')
    .description(
      `approve a held call; exit ${ApprovalExit.Refused} unknown/expired/decided, ${ApprovalExit.NotAllowed} not allowed`,
    )
    .argument('<id>', 'approval id')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .requiredOption('--as <reviewer>', "the reviewer's subject (local stand-in for an authenticated reviewer)")
    .option('--groups <groups>', "the reviewer's groups, comma-separated", parseList)
    .option('--note <text>', 'a note recorded with the approval')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(decide('approve'));

  approvals
    .command('deny')
    .description(`deny a held call; the agent reads the reason; exit codes as for approve`)
    .argument('<id>', 'approval id')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .requiredOption('--as <reviewer>', "the reviewer's subject (local stand-in for an authenticated reviewer)")
    .requiredOption('--reason <text>', 'why: the agent receives it')
    .option('--groups <groups>', "the reviewer's groups, comma-separated", parseList)
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(decide('deny'));
}
