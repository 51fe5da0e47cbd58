import { userInfo } from 'node:os';
import { type Config, resolveUpstream, type UpstreamConfig, UpstreamSchema } from '@portcullis/config';
import { describeError, UPSTREAM_NAME_PATTERN } from '@portcullis/core';
import {
  changeManagedUpstreams,
  listManagedUpstreams,
  listUpstreamStatus,
  type PublishedUpstreamStatus,
  type Store,
} from '@portcullis/store';
import { createUpstreamConnection } from '@portcullis/upstream';
import { type Command, InvalidArgumentError, Option } from 'commander';
import pino from 'pino';
import { loadConfigForCommand, type OutputFormat, openStoreForCommand, parseOutputFormat } from '../session-log.js';
import {
  type EffectiveUpstream,
  effectiveUpstreams,
  redactUpstreamConfig,
  resolveSpecSecrets,
  type UpstreamSource,
} from '../upstream-admin.js';

/** Exit codes of `portcullis upstream …` and `apply`. */
export const UpstreamExit = { Ok: 0, Failure: 1, BadInput: 2, Unknown: 3 } as const;

/** Published status older than this is ignored (its gateway is gone or stalled). */
export const STATUS_FRESH_MS = 10_000;

export class UpstreamCommandError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

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
}

interface CommonOptions {
  readonly config: string;
  readonly as?: string;
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

function addCommonOptions(command: Command): Command {
  return command
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON): names the store')
    .option('--as <name>', 'who makes the change, for the admin audit (default: the OS user)');
}

/** Builds a definition from flags, over `base` (for `set`). */
export function definitionFromFlags(flags: DefinitionFlags, base: UpstreamConfig | undefined): UpstreamConfig {
  if (flags.stdio !== undefined && flags.url !== undefined)
    throw new UpstreamCommandError(UpstreamExit.BadInput, '--stdio and --url exclude each other');
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
    throw new UpstreamCommandError(UpstreamExit.BadInput, '--sandbox and --not-sandbox exclude each other');
  if (flags.sandbox === true) common.sandbox = true;
  if (flags.notSandbox === true) delete common.sandbox;
  let raw: Record<string, unknown>;
  if (flags.stdio !== undefined || (flags.url === undefined && base?.transport === 'stdio')) {
    const previous = base?.transport === 'stdio' ? base : undefined;
    if (flags.header !== undefined)
      throw new UpstreamCommandError(UpstreamExit.BadInput, '--header is for HTTP upstreams');
    if (flags.transport !== undefined)
      throw new UpstreamCommandError(UpstreamExit.BadInput, '--transport is for HTTP upstreams (with --url)');
    const words = flags.stdio !== undefined ? splitCommandLine(flags.stdio) : undefined;
    if (words !== undefined && words.length === 0)
      throw new UpstreamCommandError(UpstreamExit.BadInput, '--stdio needs a command');
    raw = {
      transport: 'stdio',
      command: words?.[0] ?? previous?.command,
      args: words !== undefined ? words.slice(1) : (previous?.args ?? []),
      env: { ...previous?.env, ...flags.env },
      ...(flags.cwd !== undefined ? { cwd: flags.cwd } : previous?.cwd !== undefined ? { cwd: previous.cwd } : {}),
      ...common,
    };
  } else if (flags.url !== undefined || base !== undefined) {
    const previous = base !== undefined && base.transport !== 'stdio' ? base : undefined;
    if (flags.env !== undefined || flags.cwd !== undefined)
      throw new UpstreamCommandError(UpstreamExit.BadInput, '--env and --cwd are for stdio upstreams');
    raw = {
      transport: flags.transport ?? previous?.transport ?? 'streamable-http',
      url: flags.url ?? previous?.url,
      headers: { ...previous?.headers, ...flags.header },
      ...common,
    };
  } else {
    throw new UpstreamCommandError(UpstreamExit.BadInput, 'give --stdio "CMD ARGS" or --url URL');
  }
  const parsed = UpstreamSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'upstream'}: ${issue.message}`);
    throw new UpstreamCommandError(UpstreamExit.BadInput, `invalid upstream: ${problems.join('; ')}`);
  }
  return parsed.data;
}

/** The upstreams in force for `config`'s store. */
export async function currentUpstreams(config: Config, store: Store): Promise<readonly EffectiveUpstream[]> {
  return effectiveUpstreams(config, await listManagedUpstreams(store)).upstreams;
}

function findUpstream(upstreams: readonly EffectiveUpstream[], name: string): EffectiveUpstream {
  const found = upstreams.find((upstream) => upstream.name === name);
  if (found === undefined) {
    const known = upstreams.map((upstream) => upstream.name).join(', ') || 'none';
    throw new UpstreamCommandError(UpstreamExit.Unknown, `no upstream named "${name}" (known: ${known})`);
  }
  return found;
}

function checkName(name: string): void {
  if (!UPSTREAM_NAME_PATTERN.test(name))
    throw new UpstreamCommandError(
      UpstreamExit.BadInput,
      `invalid upstream name "${name}": lowercase letters, digits and "-", starting with a letter`,
    );
}

/** Opens the store named by `--config`, runs `work`, closes it, and turns errors into exit codes. */
async function withStore(configFile: string, work: (config: Config, store: Store) => Promise<void>): Promise<void> {
  const config = await loadConfigForCommand(configFile);
  const store = await openStoreForCommand(config, { migrate: true });
  try {
    await work(config, store);
  } catch (error) {
    if (error instanceof UpstreamCommandError) {
      process.stderr.write(`portcullis: ${error.message}\n`);
      process.exitCode = error.exitCode;
    } else {
      process.stderr.write(`portcullis: ${describeError(error)}\n`);
      process.exitCode = UpstreamExit.Failure;
    }
  } finally {
    await store.close();
  }
}

function target(config: UpstreamConfig): string {
  const redacted = redactUpstreamConfig(config);
  if (redacted.transport === 'stdio') return [redacted.command, ...redacted.args].join(' ');
  return redacted.url;
}

/** One row of `upstream list`. */
export interface UpstreamRow {
  readonly name: string;
  readonly source: UpstreamSource;
  readonly transport: string;
  readonly target: string;
  /** connected | connecting | failing | disabled | unknown (no running gateway reported it) */
  readonly status: string;
  readonly era: string | null;
  readonly protocolVersion: string | null;
  readonly tools: number | null;
  readonly lastError: string | null;
  /** Gateway instances that reported it recently. */
  readonly instances: number;
  readonly reportedAt: string | null;
}

function freshest(statuses: readonly PublishedUpstreamStatus[], name: string): PublishedUpstreamStatus[] {
  return statuses.filter((status) => status.name === name);
}

function rowFor(upstream: EffectiveUpstream, statuses: readonly PublishedUpstreamStatus[]): UpstreamRow {
  const reports = freshest(statuses, upstream.name);
  const latest = reports[0];
  const status = upstream.config.disabled ? 'disabled' : (latest?.status ?? 'unknown');
  return {
    name: upstream.name,
    source: upstream.source,
    transport: upstream.config.transport,
    target: target(upstream.config),
    status,
    era: latest?.era ?? null,
    protocolVersion: latest?.protocolVersion ?? null,
    tools: latest === undefined ? null : (latest.catalog.tools?.length ?? 0),
    lastError: latest?.lastError ?? null,
    instances: new Set(reports.map((report) => report.instance)).size,
    reportedAt: latest?.reportedAt.toISOString() ?? null,
  };
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

async function change(
  store: Store,
  options: CommonOptions,
  name: string,
  action: string,
  definition: UpstreamConfig | undefined,
  details: Record<string, unknown> = {},
): Promise<void> {
  await changeManagedUpstreams(store, [
    {
      name,
      definition: definition as Record<string, unknown> | undefined,
      actor: options.as ?? defaultActor(),
      action,
      details: definition === undefined ? details : { ...details, definition: redactUpstreamConfig(definition) },
    },
  ]);
}

const EFFECT = 'running gateways sharing this store apply it within about a second';

/** `portcullis upstream add|set|enable|disable|remove|list|show|test`. */
export function registerUpstreamCommands(program: Command): void {
  const upstream = program
    .command('upstream')
    .description('manage upstreams through the store; running gateways sharing it follow within a second');

  addDefinitionOptions(addCommonOptions(upstream.command('add')))
    .description('add an upstream (--stdio "CMD ARGS" or --url URL)')
    .argument('<name>', 'upstream name: lowercase letters, digits, "-"')
    .action(async (name: string, options: CommonOptions & DefinitionFlags) => {
      await withStore(options.config, async (config, store) => {
        checkName(name);
        const current = await currentUpstreams(config, store);
        if (current.some((u) => u.name === name))
          throw new UpstreamCommandError(
            UpstreamExit.BadInput,
            `an upstream named "${name}" exists already (change it with: portcullis upstream set ${name} …)`,
          );
        const definition = definitionFromFlags(options, undefined);
        await change(store, options, name, 'upstream.add', definition);
        process.stdout.write(`upstream ${name} added (${EFFECT})\n`);
      });
    });

  addDefinitionOptions(addCommonOptions(upstream.command('set')))
    .description('change an upstream: the flags given replace those values, the rest is kept')
    .argument('<name>', 'upstream name')
    .option('--enabled', 'clear --disabled')
    .action(async (name: string, options: CommonOptions & DefinitionFlags) => {
      await withStore(options.config, async (config, store) => {
        const existing = findUpstream(await currentUpstreams(config, store), name);
        const definition = definitionFromFlags(options, existing.config);
        await change(store, options, name, 'upstream.set', definition, { from: existing.source });
        process.stdout.write(`upstream ${name} changed (${EFFECT})\n`);
      });
    });

  for (const [verb, disabled] of [
    ['enable', false],
    ['disable', true],
  ] as const) {
    addCommonOptions(upstream.command(verb))
      .description(`${verb} an upstream`)
      .argument('<name>', 'upstream name')
      .action(async (name: string, options: CommonOptions) => {
        await withStore(options.config, async (config, store) => {
          const existing = findUpstream(await currentUpstreams(config, store), name);
          await change(store, options, name, `upstream.${verb}`, { ...existing.config, disabled });
          process.stdout.write(`upstream ${name} ${verb}d (${EFFECT})\n`);
        });
      });
  }

  addCommonOptions(upstream.command('remove'))
    .description('remove an upstream (a config-file upstream too: the store hides it)')
    .argument('<name>', 'upstream name')
    .action(async (name: string, options: CommonOptions) => {
      await withStore(options.config, async (config, store) => {
        const existing = findUpstream(await currentUpstreams(config, store), name);
        await change(store, options, name, 'upstream.remove', undefined, { from: existing.source });
        process.stdout.write(`upstream ${name} removed (${EFFECT})\n`);
      });
    });

  upstream
    .command('list')
    .description('every upstream with the status running gateways report')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON): names the store')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: { config: string; output: OutputFormat }) => {
      await withStore(options.config, async (config, store) => {
        const statuses = await listUpstreamStatus(store, new Date(Date.now() - STATUS_FRESH_MS));
        const rows = (await currentUpstreams(config, store)).map((u) => rowFor(u, statuses));
        if (options.output === 'json') return writeJson(rows);
        if (rows.length === 0) {
          process.stdout.write('no upstreams\n');
          return;
        }
        process.stdout.write(
          `${renderTable(
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
          )}\n`,
        );
      });
    });

  upstream
    .command('show')
    .description('one upstream: its definition (secrets redacted), status, tools, prompts and resources')
    .argument('<name>', 'upstream name')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON): names the store')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (name: string, options: { config: string; output: OutputFormat }) => {
      await withStore(options.config, async (config, store) => {
        const existing = findUpstream(await currentUpstreams(config, store), name);
        const statuses = await listUpstreamStatus(store, new Date(Date.now() - STATUS_FRESH_MS));
        const row = rowFor(existing, statuses);
        const catalog = freshest(statuses, name)[0]?.catalog ?? {};
        const shown = {
          ...row,
          definition: redactUpstreamConfig(existing.config),
          tools: catalog.tools ?? [],
          prompts: catalog.prompts ?? [],
          resources: catalog.resources ?? [],
          resourceTemplates: catalog.resourceTemplates ?? [],
        };
        if (options.output === 'json') return writeJson(shown);
        const lines = [
          `${name} (${row.source}, ${row.transport}): ${row.status}${row.era ? `, ${row.era} era` : ''}${row.protocolVersion ? `, protocol ${row.protocolVersion}` : ''}`,
          `  target: ${row.target}`,
        ];
        if (row.lastError) lines.push(`  last error: ${row.lastError}`);
        const definition = shown.definition;
        const map = definition.transport === 'stdio' ? definition.env : definition.headers;
        for (const [key, value] of Object.entries(map))
          lines.push(`  ${definition.transport === 'stdio' ? 'env' : 'header'} ${key}=${value}`);
        for (const kind of ['tools', 'prompts', 'resources', 'resourceTemplates'] as const) {
          const names = shown[kind];
          lines.push(`${kind} (${names.length}):`);
          for (const item of names) lines.push(`  ${item}`);
        }
        if (row.status === 'unknown') lines.push('(no running gateway has reported this upstream in the last 10 s)');
        process.stdout.write(`${lines.join('\n')}\n`);
      });
    });

  upstream
    .command('test')
    .description('connect to an upstream from this process: negotiate, list, with timings; exit 1 on failure')
    .argument('<name>', 'upstream name')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON): names the store')
    .option('--timeout <ms>', 'give up after this long', (value) => Number(value), 15_000)
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (name: string, options: { config: string; output: OutputFormat; timeout: number }) => {
      await withStore(options.config, async (config, store) => {
        const existing = findUpstream(await currentUpstreams(config, store), name);
        const report = await testUpstream(existing, options.timeout);
        if (options.output === 'json') writeJson(report);
        else {
          const lines = [
            `${name}: ${report.ok ? 'ok' : 'FAILED'}${report.error ? ` — ${report.error}` : ''}`,
            ...report.steps.map(
              (step) =>
                `  ${step.step.padEnd(16)} ${String(step.ms).padStart(6)} ms  ${step.ok ? step.detail : `FAILED ${step.detail}`}`,
            ),
          ];
          if (report.era) lines.push(`  era ${report.era}, protocol ${report.protocolVersion ?? '?'}`);
          if (report.serverInfo) lines.push(`  server ${report.serverInfo.name} ${report.serverInfo.version}`);
          process.stdout.write(`${lines.join('\n')}\n`);
        }
        if (!report.ok) process.exitCode = UpstreamExit.Failure;
      });
    });
}

export interface TestStep {
  readonly step: string;
  readonly ok: boolean;
  readonly ms: number;
  readonly detail: string;
}

export interface TestReport {
  readonly name: string;
  readonly ok: boolean;
  readonly error: string | null;
  readonly era: string | null;
  readonly protocolVersion: string | null;
  readonly serverInfo: { readonly name: string; readonly version: string } | null;
  readonly steps: readonly TestStep[];
  readonly totalMs: number;
}

async function testUpstream(upstream: EffectiveUpstream, timeoutMs: number): Promise<TestReport> {
  const started = performance.now();
  const steps: TestStep[] = [];
  const base = { name: upstream.name, era: null, protocolVersion: null, serverInfo: null };
  let spec: ReturnType<typeof resolveUpstream>;
  try {
    spec = resolveSpecSecrets({ ...resolveUpstream(upstream.name, upstream.config), disabled: false });
  } catch (error) {
    return { ...base, ok: false, error: describeError(error), steps, totalMs: 0 };
  }
  const connection = createUpstreamConnection(spec, {
    logger: pino({ level: 'silent' }),
    clientInfo: { name: 'portcullis-upstream-test', version: '0.1.0' },
    backoff: { initialMs: 60_000, maxMs: 60_000 },
  });
  const timed = async (step: string, work: () => Promise<string>): Promise<boolean> => {
    const at = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const detail = await Promise.race([
        work(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      steps.push({ step, ok: true, ms: Math.round(performance.now() - at), detail });
      return true;
    } catch (error) {
      steps.push({ step, ok: false, ms: Math.round(performance.now() - at), detail: describeError(error) });
      return false;
    } finally {
      clearTimeout(timer);
    }
  };
  try {
    const connected = await timed('connect', async () => {
      await connection.ready();
      return `${connection.era ?? '?'} era, protocol ${connection.protocolVersion ?? '?'}`;
    });
    if (connected) {
      const capabilities = connection.serverCapabilities ?? {};
      for (const [step, method, key, capability] of [
        ['tools/list', 'tools/list', 'tools', 'tools'],
        ['prompts/list', 'prompts/list', 'prompts', 'prompts'],
        ['resources/list', 'resources/list', 'resources', 'resources'],
      ] as const) {
        if (capabilities[capability] === undefined) continue;
        await timed(step, async () => {
          const result = await connection.request(method, {});
          const items = (result as Record<string, unknown>)[key];
          return `${Array.isArray(items) ? items.length : 0} ${key}`;
        });
      }
    }
    const failed = steps.find((step) => !step.ok);
    return {
      name: upstream.name,
      ok: failed === undefined,
      error: failed === undefined ? null : `${failed.step}: ${failed.detail}`,
      era: connection.era ?? null,
      protocolVersion: connection.protocolVersion ?? null,
      serverInfo: connection.serverInfo ?? null,
      steps,
      totalMs: Math.round(performance.now() - started),
    };
  } finally {
    await connection.close();
  }
}
