import { readFileSync } from 'node:fs';
import {
  type Config,
  resolveUpstream,
  type UpstreamConfig,
  UpstreamSchema,
  type UpstreamSpec,
} from '@portcullis/config';
import { describeError } from '@portcullis/core';
import type { Gateway } from '@portcullis/gateway';
import {
  listManagedUpstreams,
  type ManagedUpstream,
  managedUpstreamsRevision,
  type PublishedUpstreamStatus,
  publishUpstreamStatus,
  type Store,
  type UpstreamStatusInput,
  withdrawUpstreamStatus,
} from '@portcullis/store';
import type { StaticUpstreamRegistry, UpstreamPool } from '@portcullis/upstream';
import type { Logger } from 'pino';

/** Where an upstream's definition comes from. */
export type UpstreamSource = 'config' | 'store';

export interface EffectiveUpstream {
  readonly name: string;
  readonly source: UpstreamSource;
  readonly config: UpstreamConfig;
}

export interface EffectiveUpstreams {
  /** In order: config-file upstreams first (in file order), then store-only ones by name. */
  readonly upstreams: readonly EffectiveUpstream[];
  /** Store entries whose definition does not validate (skipped). */
  readonly invalid: ReadonlyMap<string, string>;
}

/**
 * The upstreams in force: the config file's, overridden by store entries of the same name (a
 * store tombstone removes a config upstream), plus the store's own.
 */
export function effectiveUpstreams(config: Config, managed: readonly ManagedUpstream[]): EffectiveUpstreams {
  const byName = new Map<string, EffectiveUpstream>();
  for (const [name, upstream] of Object.entries(config.upstreams))
    byName.set(name, { name, source: 'config', config: upstream });
  const invalid = new Map<string, string>();
  for (const entry of managed) {
    if (entry.removed) {
      byName.delete(entry.name);
      continue;
    }
    const parsed = UpstreamSchema.safeParse(entry.definition);
    if (!parsed.success) {
      invalid.set(entry.name, parsed.error.issues.map((issue) => issue.message).join('; '));
      continue;
    }
    // Overriding keeps the config entry's position (merge order decides name clashes).
    byName.set(entry.name, { name: entry.name, source: 'store', config: parsed.data });
  }
  return { upstreams: [...byName.values()], invalid };
}

/** Whether a value is a secret reference (`env:NAME`, `file:/path`). */
export function isSecretReference(value: string): boolean {
  return /^env:[A-Za-z_][A-Za-z0-9_]*$/.test(value) || /^file:.+/.test(value);
}

/** Resolves `env:NAME` / `file:/path`; anything else is returned as it is. Throws naming the reference. */
export function resolveSecretReference(value: string, env: NodeJS.ProcessEnv = process.env): string {
  if (/^env:[A-Za-z_][A-Za-z0-9_]*$/.test(value)) {
    const resolved = env[value.slice(4)];
    if (resolved === undefined) throw new Error(`secret reference ${value}: the variable is not set`);
    return resolved;
  }
  if (value.startsWith('file:') && value.length > 5) {
    try {
      return readFileSync(value.slice(5), 'utf8').replace(/\r?\n$/, '');
    } catch (error) {
      throw new Error(`secret reference ${value}: ${describeError(error)}`);
    }
  }
  return value;
}

/** The spec with its env and header references resolved (only the gateway and `upstream test` do this). */
export function resolveSpecSecrets(spec: UpstreamSpec, env: NodeJS.ProcessEnv = process.env): UpstreamSpec {
  const resolveMap = (map: Readonly<Record<string, string>>): Record<string, string> =>
    Object.fromEntries(Object.entries(map).map(([key, value]) => [key, resolveSecretReference(value, env)]));
  if (spec.transport === 'stdio') return { ...spec, env: resolveMap(spec.env) };
  return { ...spec, headers: resolveMap(spec.headers) };
}

/** Header names whose literal values are secrets. */
const SECRET_HEADER = /^(authorization|proxy-authorization|cookie|x-api-key|api-key)$|token|secret|key/i;

/**
 * A definition fit for printing: secret references are shown as they are; every literal env value
 * and the literal value of a credential-like header (Authorization, Cookie, *token*, *key*,
 * *secret*) becomes `[redacted]`.
 */
export function redactUpstreamConfig(config: UpstreamConfig): UpstreamConfig {
  if (config.transport === 'stdio') {
    return {
      ...config,
      env: Object.fromEntries(
        Object.entries(config.env).map(([key, value]) => [key, isSecretReference(value) ? value : '[redacted]']),
      ),
    };
  }
  return {
    ...config,
    url: redactUrlCredentials(config.url),
    headers: Object.fromEntries(
      Object.entries(config.headers).map(([key, value]) => [
        key,
        isSecretReference(value) || !SECRET_HEADER.test(key) ? value : '[redacted]',
      ]),
    ),
  };
}

/**
 * The inverse of `redactUpstreamConfig` for a definition edited from a redacted one (`upstream set`
 * through the admin API): an env or header value `[redacted]` takes the stored value of that key,
 * and a URL equal to the stored URL's redacted form takes the stored URL. `missing` names the
 * `[redacted]` values that have no stored value to take.
 */
export function unredactUpstreamConfig(
  definition: UpstreamConfig,
  stored: UpstreamConfig | undefined,
): { readonly config: UpstreamConfig; readonly missing: readonly string[] } {
  const missing: string[] = [];
  const restore = (
    kind: string,
    map: Readonly<Record<string, string>>,
    before: Readonly<Record<string, string>>,
  ): Record<string, string> =>
    Object.fromEntries(
      Object.entries(map).map(([key, value]) => {
        if (value !== '[redacted]') return [key, value];
        const kept = before[key];
        if (kept === undefined) missing.push(`${kind} ${key}`);
        return [key, kept ?? value];
      }),
    );
  if (definition.transport === 'stdio') {
    const before = stored?.transport === 'stdio' ? stored.env : {};
    return { config: { ...definition, env: restore('env', definition.env, before) }, missing };
  }
  const previous = stored !== undefined && stored.transport !== 'stdio' ? stored : undefined;
  const url =
    previous !== undefined && definition.url !== previous.url && definition.url === redactUrlCredentials(previous.url)
      ? previous.url
      : definition.url;
  return {
    config: { ...definition, url, headers: restore('header', definition.headers, previous?.headers ?? {}) },
    missing,
  };
}

/** The URL with any user name shown as `[redacted]` and any password dropped. */
export function redactUrlCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username === '' && parsed.password === '') return url;
    parsed.username = '[redacted]';
    parsed.password = '';
    return parsed.toString();
  } catch {
    return url;
  }
}

export interface UpstreamAdminOptions {
  readonly config: Config;
  readonly registry: StaticUpstreamRegistry;
  readonly pool: UpstreamPool;
  readonly gateway: Gateway;
  readonly store: Store;
  readonly logger: Logger;
  /** How often the store's revision is polled. Default 500 ms. */
  readonly pollMs?: number;
  /** How often this instance's upstream status is published. Default 2 s. */
  readonly publishMs?: number;
}

export interface UpstreamAdmin {
  /** Reads the store now and applies what changed (joins a read already under way). */
  sync(): Promise<void>;
  /** Like `sync`, but the read starts after this call: a change written before it is applied on return. */
  refresh(): Promise<void>;
  /** This instance's upstream status now, as it publishes it (newest report: now). */
  liveStatus(): Promise<PublishedUpstreamStatus[]>;
  close(): Promise<void>;
}

/**
 * Follows the store's managed upstreams: polls their revision (one indexed aggregate) and, when it
 * moved, re-reads them and replaces the registry's set (the pool re-creates what changed and the
 * gateway announces `list_changed`). Publishes this instance's upstream status for the CLI.
 */
export function startUpstreamAdmin(options: UpstreamAdminOptions): UpstreamAdmin {
  const { config, registry, pool, gateway, store, logger } = options;
  let seenRevision: number | undefined;
  let secretErrors = new Map<string, string>();
  let invalid: ReadonlyMap<string, string> = new Map();
  let syncing: Promise<void> | undefined;
  let closed = false;

  const apply = async (): Promise<void> => {
    const revision = await managedUpstreamsRevision(store);
    if (revision === seenRevision) return;
    const effective = effectiveUpstreams(config, await listManagedUpstreams(store));
    const specs: UpstreamSpec[] = [];
    const errors = new Map<string, string>();
    for (const upstream of effective.upstreams) {
      try {
        specs.push(resolveSpecSecrets(resolveUpstream(upstream.name, upstream.config)));
      } catch (error) {
        errors.set(upstream.name, describeError(error));
        logger.error({ upstream: upstream.name, err: describeError(error) }, 'upstream skipped');
      }
    }
    for (const [name, problem] of effective.invalid)
      logger.error({ upstream: name, err: problem }, 'invalid stored upstream skipped');
    secretErrors = errors;
    invalid = effective.invalid;
    seenRevision = revision;
    registry.replace(specs);
    await pool.settled();
    if (revision > 0)
      logger.info({ revision, upstreams: specs.map((s) => s.name) }, 'upstreams updated from the store');
    void publish();
  };

  const sync = (): Promise<void> => {
    syncing ??= apply().finally(() => {
      syncing = undefined;
    });
    return syncing;
  };

  const collect = async (): Promise<UpstreamStatusInput[]> => {
    const statuses: UpstreamStatusInput[] = [];
    const catalog = await catalogNames(gateway);
    for (const report of pool.report()) {
      statuses.push({
        name: report.name,
        transport: report.transport,
        status: report.status,
        era: report.era,
        protocolVersion: report.protocolVersion,
        lastError: report.lastError,
        catalog: catalog.get(report.name) ?? {},
      });
    }
    for (const [name, problem] of [...secretErrors, ...invalid]) {
      statuses.push({ name, transport: 'unknown', status: 'failing', lastError: problem, catalog: {} });
    }
    return statuses;
  };

  let publishing = false;
  const publish = async (): Promise<void> => {
    if (publishing || closed) return;
    publishing = true;
    try {
      await publishUpstreamStatus(store, store.instance, await collect());
    } catch (error) {
      logger.warn({ err: describeError(error) }, 'cannot publish upstream status');
    } finally {
      publishing = false;
    }
  };

  const poll = setInterval(() => {
    sync().catch((error: unknown) => logger.warn({ err: describeError(error) }, 'cannot poll the upstream store'));
  }, options.pollMs ?? 500);
  poll.unref();
  const publisher = setInterval(() => void publish(), options.publishMs ?? 2_000);
  publisher.unref();
  const unsubscribe = pool.onUpstreamsChanged(() => {
    setTimeout(() => void publish(), 200).unref();
  });

  return {
    sync,
    refresh: async () => {
      await syncing?.catch(() => undefined);
      await sync();
    },
    liveStatus: async () => {
      const reportedAt = new Date();
      return (await collect()).map((status) => ({ ...status, instance: store.instance, reportedAt }));
    },
    close: async () => {
      closed = true;
      clearInterval(poll);
      clearInterval(publisher);
      unsubscribe();
      await syncing?.catch(() => undefined);
      await withdrawUpstreamStatus(store, store.instance).catch(() => undefined);
    },
  };
}

/** The agent-facing names of each upstream's tools, prompts, resources and templates, as the gateway lists them. */
async function catalogNames(gateway: Gateway): Promise<Map<string, Record<string, string[]>>> {
  const byUpstream = new Map<string, Record<string, string[]>>();
  for (const kind of ['tools', 'prompts', 'resources', 'resourceTemplates'] as const) {
    let items: Awaited<ReturnType<Gateway['catalog']['list']>>;
    try {
      items = await gateway.catalog.list(kind);
    } catch {
      continue;
    }
    for (const item of items) {
      const entry = byUpstream.get(item.upstream) ?? {};
      const names = entry[kind] ?? [];
      names.push(item.exposed);
      entry[kind] = names;
      byUpstream.set(item.upstream, entry);
    }
  }
  return byUpstream;
}

/** The config file's upstreams with their secret references resolved (one that cannot be is skipped, logged). */
export function resolvedConfigSpecs(config: Config, logger: Logger): UpstreamSpec[] {
  const specs: UpstreamSpec[] = [];
  for (const [name, upstream] of Object.entries(config.upstreams)) {
    try {
      specs.push(resolveSpecSecrets(resolveUpstream(name, upstream)));
    } catch (error) {
      logger.error({ upstream: name, err: describeError(error) }, 'upstream skipped');
    }
  }
  return specs;
}
