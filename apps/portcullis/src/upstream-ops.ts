import { type Config, resolveUpstream, type UpstreamConfig, UpstreamSchema } from '@portcullis/config';
import { describeError, UPSTREAM_NAME_PATTERN } from '@portcullis/core';
import {
  changeManagedUpstreams,
  listManagedUpstreams,
  listUpstreamStatus,
  type ManagedUpstreamChange,
  type PublishedUpstreamStatus,
  type Store,
} from '@portcullis/store';
import { createUpstreamConnection } from '@portcullis/upstream';
import pino from 'pino';
import { CommandFailed } from './admin-client.js';
import {
  type EffectiveUpstream,
  effectiveUpstreams,
  redactUpstreamConfig,
  resolveSpecSecrets,
  type UpstreamSource,
} from './upstream-admin.js';

// The upstream operations behind `portcullis upstream …` and `apply`, on a store: the CLI runs them
// directly (-c FILE) and the admin API runs them inside the gateway (--gateway URL). Both print
// what these return, so the two ways answer alike.

/**
 * Exit codes of `portcullis upstream …` and `apply`: 0 ok, 1 failure (also: the gateway cannot be
 * reached), 2 bad input (also: the gateway refused the API key), 3 unknown upstream, 4 the API key
 * is no admin.
 */
export const UpstreamExit = { Ok: 0, Failure: 1, BadInput: 2, Unknown: 3, NotAdmin: 4 } as const;

/** Published status older than this is ignored (its gateway is gone or stalled). */
export const STATUS_FRESH_MS = 10_000;

/** Who makes a change, for the admin audit. */
export interface ChangeActor {
  readonly actor: string;
  readonly via: 'cli' | 'admin-api';
}

/** The upstreams in force for `config`'s store. */
export async function currentUpstreams(config: Config, store: Store): Promise<readonly EffectiveUpstream[]> {
  return effectiveUpstreams(config, await listManagedUpstreams(store)).upstreams;
}

export function findUpstream(upstreams: readonly EffectiveUpstream[], name: string): EffectiveUpstream {
  const found = upstreams.find((upstream) => upstream.name === name);
  if (found === undefined) {
    const known = upstreams.map((upstream) => upstream.name).join(', ') || 'none';
    throw new CommandFailed(UpstreamExit.Unknown, `no upstream named "${name}" (known: ${known})`, 'upstream.unknown');
  }
  return found;
}

export function checkName(name: string): void {
  if (!UPSTREAM_NAME_PATTERN.test(name))
    throw new CommandFailed(
      UpstreamExit.BadInput,
      `invalid upstream name "${name}": lowercase letters, digits and "-", starting with a letter`,
      'upstream.invalid',
    );
}

/** A definition as the configuration file's `upstreams:` entries are written; exit 2 naming each problem. */
export function parseDefinition(raw: unknown): UpstreamConfig {
  const parsed = UpstreamSchema.safeParse(raw);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `${issue.path.join('.') || 'upstream'}: ${issue.message}`);
    throw new CommandFailed(UpstreamExit.BadInput, `invalid upstream: ${problems.join('; ')}`, 'upstream.invalid');
  }
  return parsed.data;
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

/** What `upstream show` prints: the row, the redacted definition, the names the gateway exposes. */
export interface UpstreamDetail extends Omit<UpstreamRow, 'tools'> {
  readonly definition: UpstreamConfig;
  readonly tools: readonly string[];
  readonly prompts: readonly string[];
  readonly resources: readonly string[];
  readonly resourceTemplates: readonly string[];
}

/**
 * The recent status reports of every gateway on the store, newest first; `live` (this gateway's
 * own, taken now) replaces what its instance published.
 */
export async function recentStatuses(
  store: Store,
  live: readonly PublishedUpstreamStatus[] = [],
): Promise<PublishedUpstreamStatus[]> {
  const published = await listUpstreamStatus(store, new Date(Date.now() - STATUS_FRESH_MS));
  const liveInstances = new Set(live.map((status) => status.instance));
  return [...live, ...published.filter((status) => !liveInstances.has(status.instance))];
}

function reportsOf(statuses: readonly PublishedUpstreamStatus[], name: string): PublishedUpstreamStatus[] {
  return statuses.filter((status) => status.name === name);
}

function rowFor(upstream: EffectiveUpstream, statuses: readonly PublishedUpstreamStatus[]): UpstreamRow {
  const reports = reportsOf(statuses, upstream.name);
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

/** `upstream list`: every upstream in force with the status its gateways report. */
async function listUpstreamRows(
  config: Config,
  store: Store,
  statuses: readonly PublishedUpstreamStatus[],
): Promise<UpstreamRow[]> {
  return (await currentUpstreams(config, store)).map((upstream) => rowFor(upstream, statuses));
}

/** `upstream show NAME` (exit 3 when unknown). */
async function showUpstream(
  config: Config,
  store: Store,
  name: string,
  statuses: readonly PublishedUpstreamStatus[],
): Promise<UpstreamDetail> {
  const existing = findUpstream(await currentUpstreams(config, store), name);
  const catalog = reportsOf(statuses, name)[0]?.catalog ?? {};
  return {
    ...rowFor(existing, statuses),
    definition: redactUpstreamConfig(existing.config),
    tools: catalog.tools ?? [],
    prompts: catalog.prompts ?? [],
    resources: catalog.resources ?? [],
    resourceTemplates: catalog.resourceTemplates ?? [],
  };
}

async function change(
  store: Store,
  by: ChangeActor,
  name: string,
  action: string,
  definition: UpstreamConfig | undefined,
  details: Record<string, unknown> = {},
): Promise<void> {
  await changeManagedUpstreams(store, [
    {
      name,
      definition: definition as Record<string, unknown> | undefined,
      actor: by.actor,
      action,
      details: {
        ...details,
        via: by.via,
        ...(definition === undefined ? {} : { definition: redactUpstreamConfig(definition) }),
      },
    },
  ]);
}

/**
 * Stores `definition` for `name`: `upstream.add` when no upstream has that name (with `onlyCreate`,
 * an existing one is refused, exit 2), else `upstream.set`. Returns the audit action.
 */
async function putUpstream(
  config: Config,
  store: Store,
  name: string,
  definition: UpstreamConfig,
  by: ChangeActor,
  options: { readonly onlyCreate: boolean },
): Promise<'upstream.add' | 'upstream.set'> {
  checkName(name);
  const existing = (await currentUpstreams(config, store)).find((upstream) => upstream.name === name);
  if (existing !== undefined && options.onlyCreate)
    throw new CommandFailed(
      UpstreamExit.BadInput,
      `an upstream named "${name}" exists already (change it with: portcullis upstream set ${name} …)`,
      'upstream.exists',
    );
  if (existing === undefined) {
    await change(store, by, name, 'upstream.add', definition);
    return 'upstream.add';
  }
  await change(store, by, name, 'upstream.set', definition, { from: existing.source });
  return 'upstream.set';
}

/** `upstream enable|disable NAME` (exit 3 when unknown). */
async function setUpstreamEnabled(
  config: Config,
  store: Store,
  name: string,
  enabled: boolean,
  by: ChangeActor,
): Promise<void> {
  const existing = findUpstream(await currentUpstreams(config, store), name);
  await change(store, by, name, enabled ? 'upstream.enable' : 'upstream.disable', {
    ...existing.config,
    disabled: !enabled,
  });
}

/** `upstream remove NAME` (exit 3 when unknown): a tombstone, which hides a config-file upstream too. */
async function removeUpstream(config: Config, store: Store, name: string, by: ChangeActor): Promise<void> {
  const existing = findUpstream(await currentUpstreams(config, store), name);
  await change(store, by, name, 'upstream.remove', undefined, { from: existing.source });
}

/** The reconciliation plan: what `apply` changes to make the store's upstreams match the file. */
export interface ApplyPlan {
  readonly added: readonly string[];
  /** With the names of the fields that differ (values are never shown: they may be secrets). */
  readonly changed: readonly { readonly name: string; readonly fields: readonly string[] }[];
  readonly removed: readonly string[];
  readonly unchanged: readonly string[];
}

/** What `apply` reports (`--output json`, and the admin API's answer). */
export interface ApplyResult extends ApplyPlan {
  readonly dryRun: boolean;
  readonly applied: boolean;
}

function changedFields(before: UpstreamConfig, after: UpstreamConfig): string[] {
  const a = before as Record<string, unknown>;
  const b = after as Record<string, unknown>;
  const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
  return keys.filter((key) => JSON.stringify(a[key]) !== JSON.stringify(b[key])).sort();
}

/** The plan and the store changes that make the upstreams in force equal `desired`. */
async function planApply(
  config: Config,
  store: Store,
  desired: ReadonlyMap<string, UpstreamConfig>,
  source: string,
  by: ChangeActor,
): Promise<{ readonly plan: ApplyPlan; readonly changes: readonly ManagedUpstreamChange[] }> {
  const current = new Map((await currentUpstreams(config, store)).map((u) => [u.name, u.config]));
  const plan: {
    added: string[];
    changed: { name: string; fields: string[] }[];
    removed: string[];
    unchanged: string[];
  } = { added: [], changed: [], removed: [], unchanged: [] };
  const changes: ManagedUpstreamChange[] = [];
  const actor = by.actor;
  for (const [name, definition] of desired) {
    const before = current.get(name);
    const details = { source, via: by.via, definition: redactUpstreamConfig(definition) };
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
      details: { source, via: by.via },
    });
  }
  return { plan, changes };
}

/**
 * Where `upstream …` and `apply` work: the store (directly from the CLI, or inside the gateway for
 * the admin API), or a running gateway's admin API. Each answers with the same data, so the CLI's
 * output is the same either way.
 */
export interface UpstreamBackend {
  list(): Promise<UpstreamRow[]>;
  show(name: string): Promise<UpstreamDetail>;
  /** The definition `set` changes (through the gateway: redacted; the gateway restores `[redacted]` values). */
  definition(name: string): Promise<UpstreamConfig>;
  test(name: string, timeoutMs: number): Promise<TestReport>;
  /** Returns the audit action: `upstream.add` or `upstream.set`. */
  put(name: string, definition: UpstreamConfig, onlyCreate: boolean): Promise<string>;
  setEnabled(name: string, enabled: boolean): Promise<void>;
  remove(name: string): Promise<void>;
  /** Plans (`dryRun`) or applies the reconciliation with `desired`; `source` names it in the audit. */
  apply(desired: ReadonlyMap<string, UpstreamConfig>, source: string, dryRun: boolean): Promise<ApplyResult>;
}

export interface StoreBackendOptions {
  /** This gateway's own status, fresher than what it published (the admin API). */
  readonly live?: () => Promise<readonly PublishedUpstreamStatus[]>;
  /** Called after each change is stored (the admin API applies it to its gateway before answering). */
  readonly changed?: () => Promise<void>;
  /** Progress of `apply`'s changes (the CLI's bar on a terminal). */
  readonly progress?: (total: number) => { tick(done: number, label: string): void; end(): void };
}

/** The upstream operations on `store`, each change recorded in the admin audit as made `by`. */
export function storeBackend(
  config: Config,
  store: Store,
  by: ChangeActor,
  options: StoreBackendOptions = {},
): UpstreamBackend {
  const statuses = async () => recentStatuses(store, (await options.live?.()) ?? []);
  const changed = async () => {
    await options.changed?.();
  };
  const existing = async (name: string) => findUpstream(await currentUpstreams(config, store), name);
  return {
    list: async () => listUpstreamRows(config, store, await statuses()),
    show: async (name) => showUpstream(config, store, name, await statuses()),
    definition: async (name) => (await existing(name)).config,
    test: async (name, timeoutMs) => testUpstream(await existing(name), timeoutMs),
    put: async (name, definition, onlyCreate) => {
      const action = await putUpstream(config, store, name, definition, by, { onlyCreate });
      await changed();
      return action;
    },
    setEnabled: async (name, enabled) => {
      await setUpstreamEnabled(config, store, name, enabled, by);
      await changed();
    },
    remove: async (name) => {
      await removeUpstream(config, store, name, by);
      await changed();
    },
    apply: async (desired, source, dryRun) => {
      const { plan, changes } = await planApply(config, store, desired, source, by);
      if (dryRun || changes.length === 0) return { ...plan, dryRun, applied: false };
      const bar = options.progress?.(changes.length);
      for (const [i, change] of changes.entries()) {
        bar?.tick(i, change.name);
        await changeManagedUpstreams(store, [change]);
      }
      bar?.tick(changes.length, 'done');
      bar?.end();
      await changed();
      return { ...plan, dryRun, applied: true };
    },
  };
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

/**
 * `upstream test NAME`: connects from this process (secret references resolved here), negotiates
 * and lists, with timings.
 */
export async function testUpstream(upstream: EffectiveUpstream, timeoutMs: number): Promise<TestReport> {
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
