import { userInfo } from 'node:os';
import type { UpstreamConfig } from '@portcullis/config';
import { describeError } from '@portcullis/core';
import { type Command, InvalidArgumentError, Option } from 'commander';
import {
  type AdminClient,
  adminClientFor,
  CommandFailed,
  type GatewayTargetOptions,
  gatewayOption,
  keyOption,
} from '../admin-client.js';
import { loadConfigForCommand, type OutputFormat, openStoreForCommand, parseOutputFormat } from '../session-log.js';
import { progressBar } from '../terminal.js';
import {
  type ApplyPlan,
  type ApplyResult,
  checkName,
  parseDefinition,
  storeBackend,
  type TestReport,
  type UpstreamBackend,
  type UpstreamDetail,
  UpstreamExit,
  type UpstreamRow,
} from '../upstream-ops.js';

export { UpstreamExit };

export function defaultActor(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

/** Splits a command line into words: whitespace separates, single and double quotes group, `\` escapes. */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let current = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const char = line[i] ?? '';
    if (quote !== undefined) {
      if (char === quote) quote = undefined;
      else if (char === '\\' && quote === '"' && i + 1 < line.length) current += line[++i];
      else current += char;
    } else if (char === '"' || char === "'") {
      quote = char;
      inWord = true;
    } else if (char === '\\' && i + 1 < line.length) {
      current += line[++i];
      inWord = true;
    } else if (/\s/.test(char)) {
      if (inWord) words.push(current);
      current = '';
      inWord = false;
    } else {
      current += char;
      inWord = true;
    }
  }
  if (quote !== undefined) throw new InvalidArgumentError('unterminated quote in the command line');
  if (inWord) words.push(current);
  return words;
}

function collectPair(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const at = value.indexOf('=');
  if (at <= 0) throw new InvalidArgumentError(`expected KEY=VALUE, got "${value}"`);
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}

interface DefinitionFlags {
  readonly stdio?: string;
  readonly url?: string;
  readonly transport?: 'streamable-http' | 'sse';
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  readonly header?: Record<string, string>;
  readonly isolation?: 'shared' | 'per-session';
  /** A string, or `false` from `--no-prefix`. */
  readonly prefix?: string | boolean;
  readonly era?: 'auto' | 'legacy' | 'modern';
  readonly disabled?: boolean;
  readonly enabled?: boolean;
  /** `--sandbox` / `--not-sandbox`: whether `replay --execute` may re-run recorded calls against it. */
  readonly sandbox?: boolean;
  readonly notSandbox?: boolean;
  /** `--unset-env KEY` / `--unset-header KEY` (repeatable, `set`): entries to remove. */
  readonly unsetEnv?: readonly string[];
  readonly unsetHeader?: readonly string[];
}

function addDefinitionOptions(command: Command): Command {
  return command
    .option('--stdio <command>', 'a stdio upstream: the command line to launch ("CMD ARGS", quotes group words)')
    .option('--url <url>', 'an HTTP upstream: its URL')
    .addOption(new Option('--transport <transport>', 'HTTP transport (with --url)').choices(['streamable-http', 'sse']))
    .option('--env <K=V>', 'environment of a stdio upstream (repeatable; V may be env:NAME or file:/path)', collectPair)
    .option('--cwd <dir>', 'working directory of a stdio upstream')
    .option('--header <K=V>', 'HTTP header (repeatable; V may be env:NAME or file:/path)', collectPair)
    .addOption(
      new Option('--isolation <isolation>', 'one connection for everyone or one per session').choices([
        'shared',
        'per-session',
      ]),
    )
    .option('--prefix <prefix>', 'name prefix of its tools/prompts and resource URIs (default: the name)')
    .option('--no-prefix', 'expose its names unchanged')
    .addOption(new Option('--era <era>', 'protocol era handshake').choices(['auto', 'legacy', 'modern']))
    .option('--disabled', 'defined but not connected')
    .option('--sandbox', 'mark it as a sandbox: `replay --execute` may re-run recorded calls against it')
    .option('--not-sandbox', 'clear --sandbox');
}

/** A `KEY` of `--unset-env` / `--unset-header`, collected. */
function collectKey(value: string, previous: readonly string[] | undefined): string[] {
  if (value === '' || value.includes('=')) throw new InvalidArgumentError(`expected a KEY, got "${value}"`);
  return [...(previous ?? []), value];
}

/** `map` with `unset` removed; exit 2 naming a key it does not hold or one also being set. */
function withoutKeys(
  map: Readonly<Record<string, string>>,
  unset: readonly string[] | undefined,
  set: Readonly<Record<string, string>> | undefined,
  flag: string,
): Record<string, string> {
  const result = { ...map };
  for (const key of unset ?? []) {
    if (set !== undefined && key in set)
      throw new CommandFailed(UpstreamExit.BadInput, `${flag} ${key}: that key is also being set`);
    if (!(key in result))
      throw new CommandFailed(UpstreamExit.BadInput, `${flag} ${key}: the upstream has no such key`);
    delete result[key];
  }
  return result;
}

/** Builds a definition from flags, over `base` (for `set`). */
export function definitionFromFlags(flags: DefinitionFlags, base: UpstreamConfig | undefined): UpstreamConfig {
  if (flags.stdio !== undefined && flags.url !== undefined)
    throw new CommandFailed(UpstreamExit.BadInput, '--stdio and --url exclude each other');
  const common: Record<string, unknown> = {};
  if (base !== undefined) {
    for (const key of [
      'isolation',
      'prefix',
      'era',
      'disabled',
      'sandbox',
      'requestTimeoutMs',
      'healthCheckIntervalMs',
    ])
      if ((base as Record<string, unknown>)[key] !== undefined) common[key] = (base as Record<string, unknown>)[key];
  }
  if (flags.isolation !== undefined) common.isolation = flags.isolation;
  if (flags.prefix === false) common.prefix = false;
  else if (typeof flags.prefix === 'string') common.prefix = flags.prefix;
  if (flags.era !== undefined) common.era = flags.era;
  if (flags.disabled === true) common.disabled = true;
  if (flags.enabled === true) common.disabled = false;
  if (flags.sandbox === true && flags.notSandbox === true)
    throw new CommandFailed(UpstreamExit.BadInput, '--sandbox and --not-sandbox exclude each other');
  if (flags.sandbox === true) common.sandbox = true;
  if (flags.notSandbox === true) delete common.sandbox;
  let raw: Record<string, unknown>;
  if (flags.stdio !== undefined || (flags.url === undefined && base?.transport === 'stdio')) {
    const previous = base?.transport === 'stdio' ? base : undefined;
    if (flags.header !== undefined || flags.unsetHeader !== undefined)
      throw new CommandFailed(UpstreamExit.BadInput, '--header and --unset-header are for HTTP upstreams');
    if (flags.transport !== undefined)
      throw new CommandFailed(UpstreamExit.BadInput, '--transport is for HTTP upstreams (with --url)');
    const words = flags.stdio !== undefined ? splitCommandLine(flags.stdio) : undefined;
    if (words !== undefined && words.length === 0)
      throw new CommandFailed(UpstreamExit.BadInput, '--stdio needs a command');
    raw = {
      transport: 'stdio',
      command: words?.[0] ?? previous?.command,
      args: words !== undefined ? words.slice(1) : (previous?.args ?? []),
      env: withoutKeys({ ...previous?.env, ...flags.env }, flags.unsetEnv, flags.env, '--unset-env'),
      ...(flags.cwd !== undefined ? { cwd: flags.cwd } : previous?.cwd !== undefined ? { cwd: previous.cwd } : {}),
      ...common,
    };
  } else if (flags.url !== undefined || base !== undefined) {
    const previous = base !== undefined && base.transport !== 'stdio' ? base : undefined;
    if (flags.env !== undefined || flags.cwd !== undefined || flags.unsetEnv !== undefined)
      throw new CommandFailed(UpstreamExit.BadInput, '--env, --unset-env and --cwd are for stdio upstreams');
    raw = {
      transport: flags.transport ?? previous?.transport ?? 'streamable-http',
      url: flags.url ?? previous?.url,
      headers: withoutKeys(
        { ...previous?.headers, ...flags.header },
        flags.unsetHeader,
        flags.header,
        '--unset-header',
      ),
      ...common,
    };
  } else {
    throw new CommandFailed(UpstreamExit.BadInput, 'give --stdio "CMD ARGS" or --url URL');
  }
  return parseDefinition(raw);
}

const path = (name: string, verb?: string): string =>
  `upstreams/${encodeURIComponent(name)}${verb === undefined ? '' : `/${verb}`}`;

function gatewayBackend(client: AdminClient): UpstreamBackend {
  const show = async (name: string) => (await client.call('GET', path(name))) as UpstreamDetail;
  return {
    list: async () => (await client.call('GET', 'upstreams')) as UpstreamRow[],
    show,
    definition: async (name) => (await show(name)).definition,
    test: async (name, timeoutMs) => (await client.call('POST', path(name, 'test'), { timeoutMs })) as TestReport,
    put: async (name, definition, onlyCreate) => {
      const answer = await client.call('PUT', path(name), definition, onlyCreate ? { 'if-none-match': '*' } : {});
      return (answer as { action: string }).action;
    },
    setEnabled: async (name, enabled) => {
      await client.call('POST', path(name, enabled ? 'enable' : 'disable'));
    },
    remove: async (name) => {
      await client.call('DELETE', path(name));
    },
    apply: async (desired, source, dryRun) =>
      (await client.call('POST', 'apply', {
        document: { upstreams: Object.fromEntries(desired) },
        dryRun,
        source,
      })) as ApplyResult,
  };
}

/** `--gateway`, `--key`, `-c`, `--as`: where a command works and who it says makes the change. */
export interface UpstreamTargetOptions extends GatewayTargetOptions {
  readonly config?: string;
  readonly as?: string;
}

/**
 * Runs `work` on the backend the options name (exit 2 when neither `--gateway` nor `-c`, or `--as`
 * with `--gateway`: the API key is who makes the change) and turns failures into messages and exit
 * codes.
 */
export async function withUpstreamBackend(
  options: UpstreamTargetOptions,
  work: (backend: UpstreamBackend) => Promise<void>,
): Promise<void> {
  try {
    const client = adminClientFor(options, { 403: UpstreamExit.NotAdmin, 404: UpstreamExit.Unknown });
    if (client !== undefined) {
      if (options.as !== undefined)
        throw new CommandFailed(
          UpstreamExit.BadInput,
          '--as cannot be used with --gateway: the API key is who makes the change',
        );
      return await work(gatewayBackend(client));
    }
    if (options.config === undefined)
      throw new CommandFailed(
        UpstreamExit.BadInput,
        'either --gateway URL (a running gateway) or -c/--config FILE (the store) is needed',
      );
    const config = await loadConfigForCommand(options.config);
    const store = await openStoreForCommand(config, { migrate: true });
    try {
      await work(
        storeBackend(config, store, { actor: options.as ?? defaultActor(), via: 'cli' }, { progress: progressBar }),
      );
    } finally {
      await store.close();
    }
  } catch (error) {
    if (error instanceof CommandFailed) {
      process.stderr.write(`portcullis: ${error.message}\n`);
      process.exitCode = error.exitCode;
    } else {
      process.stderr.write(`portcullis: ${describeError(error)}\n`);
      process.exitCode = UpstreamExit.Failure;
    }
  }
}

function addTargetOptions(command: Command): Command {
  return command
    .option('-c, --config <file>', 'configuration file (YAML or JSON): work directly on its store (without --gateway)')
    .addOption(gatewayOption())
    .addOption(keyOption());
}

function addChangeOptions(command: Command): Command {
  return addTargetOptions(command).option(
    '--as <name>',
    'without --gateway: who makes the change, for the admin audit (default: the OS user)',
  );
}

export function renderTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

function writeJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

function listText(rows: readonly UpstreamRow[]): string {
  if (rows.length === 0) return 'no upstreams\n';
  return `${renderTable(
    ['NAME', 'SOURCE', 'TRANSPORT', 'STATUS', 'ERA', 'PROTOCOL', 'TOOLS', 'LAST ERROR'],
    rows.map((row) => [
      row.name,
      row.source,
      row.transport,
      row.status,
      row.era ?? '-',
      row.protocolVersion ?? '-',
      row.tools === null ? '-' : String(row.tools),
      row.lastError ?? '',
    ]),
  )}\n`;
}

function showText(shown: UpstreamDetail): string {
  const lines = [
    `${shown.name} (${shown.source}, ${shown.transport}): ${shown.status}${shown.era ? `, ${shown.era} era` : ''}${shown.protocolVersion ? `, protocol ${shown.protocolVersion}` : ''}`,
    `  target: ${shown.target}`,
  ];
  if (shown.lastError) lines.push(`  last error: ${shown.lastError}`);
  const definition = shown.definition;
  const map = definition.transport === 'stdio' ? definition.env : definition.headers;
  for (const [key, value] of Object.entries(map))
    lines.push(`  ${definition.transport === 'stdio' ? 'env' : 'header'} ${key}=${value}`);
  for (const kind of ['tools', 'prompts', 'resources', 'resourceTemplates'] as const) {
    const names = shown[kind];
    lines.push(`${kind} (${names.length}):`);
    for (const item of names) lines.push(`  ${item}`);
  }
  if (shown.status === 'unknown') lines.push('(no running gateway has reported this upstream in the last 10 s)');
  return `${lines.join('\n')}\n`;
}

function testText(report: TestReport): string {
  const lines = [
    `${report.name}: ${report.ok ? 'ok' : 'FAILED'}${report.error ? ` — ${report.error}` : ''}`,
    ...report.steps.map(
      (step) =>
        `  ${step.step.padEnd(16)} ${String(step.ms).padStart(6)} ms  ${step.ok ? step.detail : `FAILED ${step.detail}`}`,
    ),
  ];
  if (report.era) lines.push(`  era ${report.era}, protocol ${report.protocolVersion ?? '?'}`);
  if (report.serverInfo) lines.push(`  server ${report.serverInfo.name} ${report.serverInfo.version}`);
  return `${lines.join('\n')}\n`;
}

/** The diff lines of an apply plan and its summary. */
export function planText(plan: ApplyPlan): string {
  const lines = [
    ...plan.added.map((name) => `+ ${name}`),
    ...plan.changed.map((c) => `~ ${c.name} (${c.fields.join(', ')})`),
    ...plan.removed.map((name) => `- ${name}`),
  ];
  const summary = `${plan.added.length} to add, ${plan.changed.length} to change, ${plan.removed.length} to remove, ${plan.unchanged.length} unchanged`;
  return `${[...lines, summary].join('\n')}\n`;
}

const EFFECT = 'running gateways sharing this store apply it within about a second';

const EXITS_HELP = `exit codes: 0 ok, ${UpstreamExit.Failure} failure or gateway unreachable, ${UpstreamExit.BadInput} bad input or a refused API key, ${UpstreamExit.Unknown} unknown upstream, ${UpstreamExit.NotAdmin} the API key is no admin`;

type ChangeOptions = UpstreamTargetOptions & DefinitionFlags;

/** `portcullis upstream add|set|enable|disable|remove|list|show|test`. */
export function registerUpstreamCommands(program: Command): void {
  const upstream = program
    .command('upstream')
    .description(
      'manage upstreams through a running gateway (--gateway URL, an admin API key) or the store (-c FILE); running gateways follow within a second',
    )
    .addHelpText('after', `\n${EXITS_HELP}`);

  addDefinitionOptions(addChangeOptions(upstream.command('add')))
    .description('add an upstream (--stdio "CMD ARGS" or --url URL)')
    .argument('<name>', 'upstream name: lowercase letters, digits, "-"')
    .addHelpText('after', `\n${EXITS_HELP}`)
    .action(async (name: string, options: ChangeOptions) => {
      await withUpstreamBackend(options, async (backend) => {
        checkName(name);
        if (options.unsetEnv !== undefined || options.unsetHeader !== undefined)
          throw new CommandFailed(UpstreamExit.BadInput, '--unset-env and --unset-header are for upstream set');
        await backend.put(name, definitionFromFlags(options, undefined), true);
        process.stdout.write(`upstream ${name} added (${EFFECT})\n`);
      });
    });

  addDefinitionOptions(addChangeOptions(upstream.command('set')))
    .description('change an upstream: the flags given replace those values, the rest is kept')
    .argument('<name>', 'upstream name')
    .option('--enabled', 'clear --disabled')
    .option('--unset-env <KEY>', 'remove an environment entry of a stdio upstream (repeatable)', collectKey)
    .option('--unset-header <KEY>', 'remove a header of an HTTP upstream (repeatable)', collectKey)
    .addHelpText('after', `\n${EXITS_HELP}`)
    .action(async (name: string, options: ChangeOptions) => {
      await withUpstreamBackend(options, async (backend) => {
        const definition = definitionFromFlags(options, await backend.definition(name));
        await backend.put(name, definition, false);
        process.stdout.write(`upstream ${name} changed (${EFFECT})\n`);
      });
    });

  for (const [verb, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    addChangeOptions(upstream.command(verb))
      .description(`${verb} an upstream`)
      .argument('<name>', 'upstream name')
      .addHelpText('after', `\n${EXITS_HELP}`)
      .action(async (name: string, options: UpstreamTargetOptions) => {
        await withUpstreamBackend(options, async (backend) => {
          await backend.setEnabled(name, enabled);
          process.stdout.write(`upstream ${name} ${verb}d (${EFFECT})\n`);
        });
      });
  }

  addChangeOptions(upstream.command('remove'))
    .description('remove an upstream (a config-file upstream too: the store hides it)')
    .argument('<name>', 'upstream name')
    .addHelpText('after', `\n${EXITS_HELP}`)
    .action(async (name: string, options: UpstreamTargetOptions) => {
      await withUpstreamBackend(options, async (backend) => {
        await backend.remove(name);
        process.stdout.write(`upstream ${name} removed (${EFFECT})\n`);
      });
    });

  addTargetOptions(upstream.command('list'))
    .description('every upstream with the status running gateways report')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .addHelpText('after', `\n${EXITS_HELP}`)
    .action(async (options: UpstreamTargetOptions & { output: OutputFormat }) => {
      await withUpstreamBackend(options, async (backend) => {
        const rows = await backend.list();
        if (options.output === 'json') writeJson(rows);
        else process.stdout.write(listText(rows));
      });
    });

  addTargetOptions(upstream.command('show'))
    .description('one upstream: its definition (secrets redacted), status, tools, prompts and resources')
    .argument('<name>', 'upstream name')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .addHelpText('after', `\n${EXITS_HELP}`)
    .action(async (name: string, options: UpstreamTargetOptions & { output: OutputFormat }) => {
      await withUpstreamBackend(options, async (backend) => {
        const shown = await backend.show(name);
        if (options.output === 'json') writeJson(shown);
        else process.stdout.write(showText(shown));
      });
    });

  addTargetOptions(upstream.command('test'))
    .description(
      'connect to an upstream from this process (with --gateway: from the gateway): negotiate, list, with timings; exit 1 on failure',
    )
    .argument('<name>', 'upstream name')
    .option('--timeout <ms>', 'give up after this long', (value) => Number(value), 15_000)
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .addHelpText('after', `\n${EXITS_HELP}`)
    .action(async (name: string, options: UpstreamTargetOptions & { output: OutputFormat; timeout: number }) => {
      await withUpstreamBackend(options, async (backend) => {
        const report = await backend.test(name, options.timeout);
        if (options.output === 'json') writeJson(report);
        else process.stdout.write(testText(report));
        if (!report.ok) process.exitCode = UpstreamExit.Failure;
      });
    });
}
