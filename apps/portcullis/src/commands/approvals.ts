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
import { approvalFromJson, approvalToJson } from '../admin-api.js';
import {
  type AdminClient,
  adminClientFor,
  CommandFailed,
  type ExitCodesByStatus,
  type GatewayTargetOptions,
  gatewayOption,
  keyOption,
} from '../admin-client.js';
import {
  CheckFailed,
  loadConfigForCommand,
  type OutputFormat,
  openStoreForCommand,
  parseOutputFormat,
} from '../session-log.js';

/**
 * Exit codes of `approvals approve|deny`, beside 0 (decided), 1 (runtime failure, gateway
 * unreachable) and 2 (bad usage or configuration, an API key the gateway refuses): 3 the approval is unknown, expired or already decided; 4 the reviewer may not
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

const toJson = approvalToJson;

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

/** How the CLI reaches approvals: a running gateway's admin API, or the store directly. */
interface TargetOptions extends GatewayTargetOptions {
  readonly config?: string;
}

/** The admin API's refusals as exit codes: 403 may not decide, 404/409 unknown, expired or decided. */
const APPROVAL_EXITS: ExitCodesByStatus = {
  403: ApprovalExit.NotAllowed,
  404: ApprovalExit.Refused,
  409: ApprovalExit.Refused,
};

/**
 * Runs `viaGateway` when `--gateway` (or PORTCULLIS_GATEWAY_URL) is given, `viaStore` otherwise, and
 * turns refusals into messages and exit codes.
 */
async function run(
  options: TargetOptions,
  viaGateway: (client: AdminClient) => Promise<void>,
  viaStore: (store: Store) => Promise<void>,
): Promise<void> {
  try {
    const client = adminClientFor(options, APPROVAL_EXITS);
    if (client !== undefined) return await viaGateway(client);
    if (options.config === undefined) {
      throw new CommandFailed(2, 'either --gateway URL (a running gateway) or -c/--config FILE (the store) is needed');
    }
    await withStore(options.config, viaStore);
  } catch (error) {
    if (!(error instanceof CommandFailed)) throw error;
    process.stderr.write(`portcullis: ${error.message}\n`);
    process.exitCode = error.exitCode;
  }
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
    } else if (error instanceof CommandFailed) {
      throw error;
    } else {
      process.stderr.write(`portcullis: ${describeError(error)}\n`);
      process.exitCode = 1;
    }
  } finally {
    await store.close();
  }
}

interface ListOptions extends TargetOptions {
  readonly output: OutputFormat;
  readonly status: ApprovalStatus | 'all';
  readonly watch?: boolean;
  readonly interval: number;
}

interface DecideOptions extends TargetOptions {
  readonly as?: string;
  readonly groups?: string[];
  readonly note?: string;
  readonly reason?: string;
  readonly output: OutputFormat;
}

const configOption = '-c, --config <file>';
const configHelp = 'configuration file (YAML or JSON): work directly on its store (without --gateway)';

/**
 * `portcullis approvals list|show|approve|deny`: reviewers decide held calls. With `--gateway URL`
 * (or PORTCULLIS_GATEWAY_URL) through the running gateway's admin API: the API key (`--key` or
 * PORTCULLIS_API_KEY) is the reviewer, its name and groups are checked and recorded. Without it,
 * directly on the store (Postgres, or the embedded database with the gateway stopped): `--as` names
 * the reviewer and is trusted — whoever can write the store can decide as anyone.
 */
export function registerApprovalCommands(program: Command): void {
  const approvals = program.command('approvals').description('held tool calls waiting for a reviewer (approval holds)');

  approvals
    .command('list')
    .description('approvals, newest first (default: pending ones)')
    .option(configOption, configHelp)
    .addOption(gatewayOption())
    .addOption(keyOption())
    .option('--status <status>', `${STATUSES.join('|')}|all`, parseStatus, 'pending' as ApprovalStatus | 'all')
    .option('--watch', 'print again whenever the list changes (until interrupted)')
    .option('--interval <ms>', 'how often --watch looks', (v) => Number(v), 1_000)
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: ListOptions) => {
      const status = options.status === 'all' ? undefined : options.status;
      const loop = async (fetchRecords: () => Promise<ApprovalRecord[]>) => {
        let last = '';
        for (;;) {
          const records = await fetchRecords();
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
      };
      await run(
        options,
        (client) =>
          loop(async () => {
            const rows = await client.call('GET', `approvals?status=${encodeURIComponent(options.status)}`);
            return Array.isArray(rows) ? rows.map(approvalFromJson) : [];
          }),
        (store) => {
          const approvalStore = new ApprovalStore(store.db);
          return loop(() => approvalStore.list(status === undefined ? {} : { status }));
        },
      );
    });

  approvals
    .command('show')
    .description('one approval: the call, its arguments and hash, the rule, reviewers and decisions')
    .argument('<id>', 'approval id')
    .option(configOption, configHelp)
    .addOption(gatewayOption())
    .addOption(keyOption())
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (id: string, options: TargetOptions & { output: OutputFormat }) => {
      const print = (record: ApprovalRecord): void => {
        process.stdout.write(options.output === 'json' ? `${JSON.stringify(toJson(record))}\n` : details(record));
      };
      await run(
        options,
        async (client) => print(approvalFromJson(await client.call('GET', `approvals/${encodeURIComponent(id)}`))),
        async (store) => {
          const record = await new ApprovalStore(store.db).get(id);
          if (record === undefined) throw new ApprovalError('approval.not_found', `no approval ${id}`);
          print(record);
        },
      );
    });

  const decide = (verdict: 'approve' | 'deny') => async (id: string, options: DecideOptions) => {
    const text = verdict === 'approve' ? options.note : options.reason;
    const report = (record: ApprovalRecord, reviewer: string) => {
      if (options.output === 'json') process.stdout.write(`${JSON.stringify(toJson(record))}\n`);
      else if (record.status === 'pending') {
        const got = record.votes.filter((v) => v.verdict === 'approve').length;
        process.stdout.write(
          `approval ${id}: approved by ${reviewer} (${got} of ${record.requiredCount}); still pending\n`,
        );
      } else process.stdout.write(`approval ${id}: ${record.status} by ${reviewer}\n`);
    };
    if (options.gateway !== undefined && options.gateway !== '' && (options.as !== undefined || options.groups)) {
      process.stderr.write(
        'portcullis: --as and --groups cannot be used with --gateway: the API key decides who you are\n',
      );
      process.exitCode = 2;
      return;
    }
    await run(
      options,
      async (client) => {
        const body = verdict === 'approve' ? (text === undefined ? {} : { note: text }) : { reason: text ?? '' };
        const record = approvalFromJson(
          await client.call('POST', `approvals/${encodeURIComponent(id)}/${verdict}`, body),
        );
        report(record, record.votes.at(-1)?.reviewer ?? 'you');
      },
      async (store) => {
        const reviewer = options.as;
        if (reviewer === undefined) {
          throw new CommandFailed(
            2,
            '--as REVIEWER is needed without --gateway (or decide through --gateway with an API key)',
          );
        }
        const record = await new ApprovalStore(store.db).decide({
          id,
          reviewer,
          reviewerGroups: options.groups ?? [],
          verdict,
          text,
        });
        await store
          .recordAdminAction({
            actor: reviewer,
            action: `approval.${verdict}`,
            target: id,
            details: { groups: options.groups ?? [], text: text ?? null, status: record.status },
          })
          .catch(() => undefined);
        report(record, reviewer);
      },
    );
  };

  approvals
    .command('approve')
    .description(
      `approve a held call; exit ${ApprovalExit.Refused} unknown/expired/decided, ${ApprovalExit.NotAllowed} not allowed`,
    )
    .argument('<id>', 'approval id')
    .option(configOption, configHelp)
    .addOption(gatewayOption())
    .addOption(keyOption())
    .option('--as <reviewer>', "without --gateway: the reviewer's subject (trusted: whoever can write the store)")
    .option('--groups <groups>', "without --gateway: the reviewer's groups, comma-separated", parseList)
    .option('--note <text>', 'a note recorded with the approval')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(decide('approve'));

  approvals
    .command('deny')
    .description(`deny a held call; the agent reads the reason; exit codes as for approve`)
    .argument('<id>', 'approval id')
    .option(configOption, configHelp)
    .addOption(gatewayOption())
    .addOption(keyOption())
    .option('--as <reviewer>', "without --gateway: the reviewer's subject (trusted: whoever can write the store)")
    .requiredOption('--reason <text>', 'why: the agent receives it')
    .option('--groups <groups>', "without --gateway: the reviewer's groups, comma-separated", parseList)
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(decide('deny'));
}
