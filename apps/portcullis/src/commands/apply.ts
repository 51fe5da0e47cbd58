import type { Command } from 'commander';
import { gatewayOption, keyOption } from '../admin-client.js';
import { loadConfigForCommand, type OutputFormat, parseOutputFormat } from '../session-log.js';
import { confirm } from '../terminal.js';
import { UpstreamExit } from '../upstream-ops.js';
import { planText, withUpstreamBackend } from './upstream.js';

interface ApplyOptions {
  readonly file: string;
  readonly config?: string;
  readonly gateway?: string;
  readonly key?: string;
  readonly dryRun?: boolean;
  readonly yes?: boolean;
  readonly as?: string;
  readonly output: OutputFormat;
}

/**
 * `portcullis apply -f FILE`: reconciles the upstreams with a file's `upstreams:` section, through a
 * running gateway's admin API (`--gateway`) or directly on the store (`-c`, default: the file).
 */
export function registerApplyCommands(program: Command): void {
  program
    .command('apply')
    .description('reconcile upstreams with a configuration file (diff first); policy: use portcullis policy apply')
    .requiredOption('-f, --file <file>', 'configuration file whose upstreams are the desired set')
    .option('-c, --config <file>', 'configuration file naming the store (default: --file; not with --gateway)')
    .addOption(gatewayOption())
    .addOption(keyOption())
    .option('--dry-run', 'show the diff and change nothing')
    .option('--yes', 'apply without asking (required when not on a terminal)')
    .option('--as <name>', 'without --gateway: who makes the change, for the admin audit (default: the OS user)')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .addHelpText(
      'after',
      `\nexit codes: 0 ok, ${UpstreamExit.Failure} failure or gateway unreachable, ${UpstreamExit.BadInput} bad input, not confirmed or a refused API key, ${UpstreamExit.NotAdmin} the API key is no admin`,
    )
    .action(async (options: ApplyOptions) => {
      const desired = new Map(Object.entries((await loadConfigForCommand(options.file)).upstreams));
      const viaGateway = options.gateway !== undefined && options.gateway !== '';
      const target = { ...options, config: viaGateway ? options.config : (options.config ?? options.file) };
      await withUpstreamBackend(target, async (backend) => {
        const plan = await backend.apply(desired, options.file, true);
        if (options.output === 'text') process.stdout.write(planText(plan));
        const count = plan.added.length + plan.changed.length + plan.removed.length;
        let result = plan;
        if (count > 0 && options.dryRun !== true) {
          if (options.yes !== true) {
            if (process.stdin.isTTY !== true || process.stderr.isTTY !== true) {
              process.stderr.write('portcullis: apply asks for confirmation on a terminal: pass --yes to apply here\n');
              process.exitCode = UpstreamExit.BadInput;
              return;
            }
            if (!(await confirm(`Apply ${count} change(s)? [y/N] `))) {
              process.stderr.write('portcullis: not confirmed; nothing was changed\n');
              process.exitCode = UpstreamExit.BadInput;
              return;
            }
          }
          result = await backend.apply(desired, options.file, false);
          if (options.output === 'text')
            process.stdout.write('applied; running gateways sharing this store follow within about a second\n');
        }
        if (options.output === 'json')
          process.stdout.write(`${JSON.stringify({ ...result, dryRun: options.dryRun === true }, null, 2)}\n`);
      });
    });
}
