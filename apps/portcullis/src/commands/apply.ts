import type { UpstreamConfig } from '@portcullis/config';
import { describeError } from '@portcullis/core';
import { changeManagedUpstreams, type ManagedUpstreamChange } from '@portcullis/store';
import type { Command } from 'commander';
import { loadConfigForCommand, type OutputFormat, openStoreForCommand, parseOutputFormat } from '../session-log.js';
import { confirm, progressBar } from '../terminal.js';
import { redactUpstreamConfig } from '../upstream-admin.js';
import { currentUpstreams, defaultActor, UpstreamExit } from './upstream.js';

/** The reconciliation plan: what `apply` changes to make the store's upstreams match the file. */
export interface ApplyPlan {
  readonly added: readonly string[];
  /** With the names of the fields that differ (values are never shown: they may be secrets). */
  readonly changed: readonly { readonly name: string; readonly fields: readonly string[] }[];
  readonly removed: readonly string[];
  readonly unchanged: readonly string[];
}

function changedFields(before: UpstreamConfig, after: UpstreamConfig): string[] {
  const a = before as Record<string, unknown>;
  const b = after as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.filter((key) => JSON.stringify(a[key]) !== JSON.stringify(b[key])).sort();
}

/** `portcullis apply -f FILE`: reconciles the store's upstreams with a file's `upstreams:` section. */
export function registerApplyCommands(program: Command): void {
  program
    .command('apply')
    .description('reconcile upstreams with a configuration file (diff first); policy: use portcullis policy apply')
    .requiredOption('-f, --file <file>', 'configuration file whose upstreams are the desired set')
    .option('-c, --config <file>', 'configuration file naming the store (default: --file)')
    .option('--dry-run', 'show the diff and change nothing')
    .option('--yes', 'apply without asking (required when not on a terminal)')
    .option('--as <name>', 'who makes the change, for the admin audit (default: the OS user)')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(
      async (options: {
        file: string;
        config?: string;
        dryRun?: boolean;
        yes?: boolean;
        as?: string;
        output: OutputFormat;
      }) => {
        const desiredConfig = await loadConfigForCommand(options.file);
        const config = options.config === undefined ? desiredConfig : await loadConfigForCommand(options.config);
        const store = await openStoreForCommand(config, { migrate: true });
        try {
          const current = new Map((await currentUpstreams(config, store)).map((u) => [u.name, u.config]));
          const desired = new Map(Object.entries(desiredConfig.upstreams));
          const actor = options.as ?? defaultActor();
          const plan: {
            added: string[];
            changed: { name: string; fields: string[] }[];
            removed: string[];
            unchanged: string[];
          } = { added: [], changed: [], removed: [], unchanged: [] };
          const changes: ManagedUpstreamChange[] = [];
          for (const [name, definition] of desired) {
            const before = current.get(name);
            const details = { source: options.file, definition: redactUpstreamConfig(definition) };
            if (before === undefined) {
              plan.added.push(name);
              changes.push({ name, definition, actor, action: 'upstream.apply.add', details });
            } else {
              const fields = changedFields(before, definition);
              if (fields.length === 0) {
                plan.unchanged.push(name);
                continue;
              }
              plan.changed.push({ name, fields });
              changes.push({ name, definition, actor, action: 'upstream.apply.set', details: { ...details, fields } });
            }
          }
          for (const name of current.keys()) {
            if (desired.has(name)) continue;
            plan.removed.push(name);
            changes.push({
              name,
              definition: undefined,
              actor,
              action: 'upstream.apply.remove',
              details: { source: options.file },
            });
          }
          const lines = [
            ...plan.added.map((name) => `+ ${name}`),
            ...plan.changed.map((c) => `~ ${c.name} (${c.fields.join(', ')})`),
            ...plan.removed.map((name) => `- ${name}`),
          ];
          const summary = `${plan.added.length} to add, ${plan.changed.length} to change, ${plan.removed.length} to remove, ${plan.unchanged.length} unchanged`;
          if (options.output === 'text') process.stdout.write(`${[...lines, summary].join('\n')}\n`);
          let applied = false;
          if (changes.length > 0 && options.dryRun !== true) {
            if (options.yes !== true) {
              if (process.stdin.isTTY !== true || process.stderr.isTTY !== true) {
                process.stderr.write(
                  'portcullis: apply asks for confirmation on a terminal: pass --yes to apply here\n',
                );
                process.exitCode = UpstreamExit.BadInput;
                return;
              }
              if (!(await confirm(`Apply ${changes.length} change(s)? [y/N] `))) {
                process.stderr.write('portcullis: not confirmed; nothing was changed\n');
                process.exitCode = UpstreamExit.BadInput;
                return;
              }
            }
            const bar = progressBar(changes.length);
            for (const [i, change] of changes.entries()) {
              bar.tick(i, change.name);
              await changeManagedUpstreams(store, [change]);
            }
            bar.tick(changes.length, 'done');
            bar.end();
            applied = true;
            if (options.output === 'text')
              process.stdout.write('applied; running gateways sharing this store follow within about a second\n');
          }
          if (options.output === 'json')
            process.stdout.write(`${JSON.stringify({ ...plan, dryRun: options.dryRun === true, applied }, null, 2)}\n`);
        } catch (error) {
          process.stderr.write(`portcullis: apply failed: ${describeError(error)}\n`);
          process.exitCode = UpstreamExit.Failure;
        } finally {
          await store.close();
        }
      },
    );
}
