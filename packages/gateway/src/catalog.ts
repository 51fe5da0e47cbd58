import { UriTemplate } from '@modelcontextprotocol/server';
import type { UpstreamSpec } from '@portcullis/config';
import {
  canonicalName,
  describeError,
  isValidToolName,
  type NamespaceOptions,
  namespacedName,
  namespacedUri,
  type RpcResult,
  splitNamespacedUri,
} from '@portcullis/core';
import type { UpstreamConnection } from '@portcullis/upstream';
import type { Logger } from 'pino';
import { rewriteListedUris } from './uris.js';

/** The four lists an upstream can expose, by the key each list result carries them under. */
export const LIST_KINDS = {
  tools: { method: 'tools/list', key: 'tools', capability: 'tools' },
  prompts: { method: 'prompts/list', key: 'prompts', capability: 'prompts' },
  resources: { method: 'resources/list', key: 'resources', capability: 'resources' },
  resourceTemplates: { method: 'resources/templates/list', key: 'resourceTemplates', capability: 'resources' },
} as const;
export type ListKind = keyof typeof LIST_KINDS;

/** Which lists a `notifications/<x>/list_changed` invalidates. */
export function listKindsForNotification(method: string): ListKind[] {
  switch (method) {
    case 'notifications/tools/list_changed':
      return ['tools'];
    case 'notifications/prompts/list_changed':
      return ['prompts'];
    case 'notifications/resources/list_changed':
      return ['resources', 'resourceTemplates'];
    default:
      return [];
  }
}

/** One item of a merged list: the agent-facing object and where it came from. */
export interface CatalogItem {
  readonly upstream: string;
  /** The name (tools, prompts) or URI / URI template (resources) as the upstream knows it. */
  readonly original: string;
  /** The name or URI as the agent sees it. */
  readonly exposed: string;
  /** The agent-facing object (name or URI rewritten, everything else as the upstream sent it). */
  readonly item: RpcResult;
}

export interface UpstreamLists {
  readonly entries: Partial<Record<ListKind, readonly RpcResult[]>>;
  /**
   * What the upstream listed last, kept across invalidation: while it is unreachable its items stay
   * visible, so a call fails naming the upstream instead of as an unknown name.
   */
  readonly lastKnown: Partial<Record<ListKind, readonly RpcResult[]>>;
  readonly loading: Partial<Record<ListKind, Promise<readonly RpcResult[]>>>;
}

export interface CatalogSource {
  /** Upstreams in configuration order; the order decides which of two clashing names wins. */
  specs(): readonly UpstreamSpec[];
  /** The connection lists are read through (the upstream's primary connection). */
  primary(name: string): UpstreamConnection | undefined;
}

/**
 * The merged, namespaced view of every upstream's tools, prompts, resources and templates. Lists
 * are fetched per upstream on first use (all pages), kept until that upstream reports a change or
 * reconnects, and merged in configuration order. `version` increases on every change so cursors
 * minted against an older merge are recognised as stale.
 */
export class Catalog implements CatalogView {
  private readonly lists = new Map<string, UpstreamLists>();
  private merged: Partial<Record<ListKind, MergedList>> = {};
  private currentVersion = 1;

  constructor(
    private readonly source: CatalogSource,
    private readonly naming: NamespaceOptions,
    private readonly logger: Logger,
  ) {}

  get version(): number {
    return this.currentVersion;
  }

  /** Forgets what an upstream listed (all kinds, or the given ones). */
  invalidate(upstream: string, kinds: readonly ListKind[] = Object.keys(LIST_KINDS) as ListKind[]): void {
    const lists = this.lists.get(upstream);
    if (lists) forgetLists(lists, kinds);
    for (const kind of kinds) delete this.merged[kind];
    this.currentVersion++;
  }

  /** Forgets everything (upstreams were added, removed or changed). */
  invalidateAll(): void {
    for (const lists of this.lists.values()) forgetLists(lists, Object.keys(LIST_KINDS) as ListKind[]);
    this.merged = {};
    this.currentVersion++;
  }

  async list(kind: ListKind): Promise<readonly CatalogItem[]> {
    return (await this.mergedList(kind)).items;
  }

  /** Finds a tool or prompt by the name the agent used (compared in canonical form). */
  async resolveName(kind: 'tools' | 'prompts', name: string): Promise<CatalogItem | undefined> {
    return (await this.mergedList(kind)).byName.get(canonicalName(name));
  }

  peekName(kind: 'tools' | 'prompts', name: string): CatalogItem | undefined {
    const cached = this.merged[kind];
    return cached && cached.version === this.currentVersion ? cached.byName.get(canonicalName(name)) : undefined;
  }

  /** Finds the upstream that owns a resource URI the agent used (see `resolveUriIn`). */
  resolveUri(uri: string): Promise<{ upstream: string; original: string } | undefined> {
    return resolveUriIn(
      uri,
      this.source.specs(),
      (kind) => this.mergedList(kind),
      (name) => Boolean(this.source.primary(name)?.serverCapabilities?.resources),
    );
  }

  /** The merged list of one kind, memoised per catalog version. */
  async mergedList(kind: ListKind): Promise<MergedList> {
    const cached = this.merged[kind];
    if (cached && cached.version === this.currentVersion) return cached;
    const version = this.currentVersion;
    const perUpstream = await Promise.all(
      this.source.specs().map(async (spec) => ({ spec, items: await this.upstreamList(spec, kind) })),
    );
    const merged = mergeLists(kind, perUpstream, this.naming, this.logger);
    // A change that arrived while fetching leaves the result unmemoised, so the next call refetches.
    if (version === this.currentVersion) this.merged[kind] = { ...merged, version };
    return { ...merged, version };
  }

  /** What one upstream lists through its primary connection (cached; the last known items while unreachable). */
  upstreamList(spec: UpstreamSpec, kind: ListKind): Promise<readonly RpcResult[]> {
    const connection = this.source.primary(spec.name);
    if (!connection) return Promise.resolve([]);
    let lists = this.lists.get(spec.name);
    if (!lists) {
      lists = emptyLists();
      this.lists.set(spec.name, lists);
    }
    return listThrough(connection, lists, kind, this.logger);
  }
}

export function emptyLists(): UpstreamLists {
  return { entries: {}, loading: {}, lastKnown: {} };
}

/** Forgets the listed kinds (the last known items stay, see `UpstreamLists.lastKnown`). */
export function forgetLists(lists: UpstreamLists, kinds: readonly ListKind[]): void {
  for (const kind of kinds) {
    delete lists.entries[kind];
    delete lists.loading[kind];
  }
}

/**
 * One list of one connection, fetched (all pages) on first use and kept in `lists` until forgotten.
 * Concurrent callers share one fetch; a fetch overtaken by an invalidation is returned but not kept.
 */
export async function listThrough(
  connection: UpstreamConnection,
  lists: UpstreamLists,
  kind: ListKind,
  logger: Logger,
): Promise<readonly RpcResult[]> {
  const known = lists.entries[kind];
  if (known) return known;
  if (connection.status !== 'connected') return lists.lastKnown[kind] ?? [];
  if (!connection.serverCapabilities?.[LIST_KINDS[kind].capability]) return [];
  const pending = lists.loading[kind] ?? fetchAll(connection, kind);
  lists.loading[kind] = pending;
  try {
    const items = await pending;
    if (lists.loading[kind] === pending) {
      lists.entries[kind] = items;
      lists.lastKnown[kind] = items;
      delete lists.loading[kind];
    }
    return items;
  } catch (error) {
    if (lists.loading[kind] === pending) delete lists.loading[kind];
    logger.warn({ upstream: connection.spec.name, kind, err: describeError(error) }, 'listing an upstream failed');
    return lists.lastKnown[kind] ?? [];
  }
}

/** What routing and list pages read: the shared catalog, or one session's view over it. */
export interface CatalogView {
  /** Changes whenever any list of the view may have changed; cursors are bound to it. */
  readonly version: number | string;
  list(kind: ListKind): Promise<readonly CatalogItem[]>;
  resolveName(kind: 'tools' | 'prompts', name: string): Promise<CatalogItem | undefined>;
  /** `resolveName` from what is already merged and current; `undefined` when not (the caller may `list` first). */
  peekName(kind: 'tools' | 'prompts', name: string): CatalogItem | undefined;
  resolveUri(uri: string): Promise<{ upstream: string; original: string } | undefined>;
}

/**
 * Finds the upstream that owns a resource URI the agent used: a prefixed URI names its upstream;
 * an unprefixed one is looked up among listed resources and templates of unprefixed upstreams, and
 * falls back to the only unprefixed upstream that serves resources (resources need not be listed).
 */
export async function resolveUriIn(
  uri: string,
  specs: readonly UpstreamSpec[],
  merged: (kind: 'resources' | 'resourceTemplates') => Promise<MergedList>,
  servesResources: (upstream: string) => boolean,
): Promise<{ upstream: string; original: string } | undefined> {
  const split = splitNamespacedUri(uri);
  if (split) {
    const owner = specs.find((spec) => spec.namePrefix === split.prefix);
    if (owner) return { upstream: owner.name, original: split.uri };
  }
  const unprefixed = specs.filter((spec) => spec.namePrefix === undefined);
  if (unprefixed.length === 0) return undefined;
  const resources = await merged('resources');
  const listed = resources.byName.get(uri);
  if (listed && unprefixed.some((spec) => spec.name === listed.upstream))
    return { upstream: listed.upstream, original: uri };
  const templates = (await merged('resourceTemplates')).items;
  for (const template of templates) {
    if (!unprefixed.some((spec) => spec.name === template.upstream)) continue;
    if (matchesTemplate(template.original, uri)) return { upstream: template.upstream, original: uri };
  }
  const servingResources = unprefixed.filter((spec) => servesResources(spec.name));
  if (servingResources.length === 1 && servingResources[0])
    return { upstream: servingResources[0].name, original: uri };
  return undefined;
}

export interface MergedList {
  readonly items: readonly CatalogItem[];
  /** Canonical name (tools, prompts) or exact exposed URI (resources, templates) → item. */
  readonly byName: ReadonlyMap<string, CatalogItem>;
  readonly version: number | string;
}

/** Upstream page cursors are followed to the end; a runaway upstream is cut off. */
const MAX_UPSTREAM_PAGES = 1000;

async function fetchAll(connection: UpstreamConnection, kind: ListKind): Promise<readonly RpcResult[]> {
  const { method, key } = LIST_KINDS[kind];
  const items: RpcResult[] = [];
  let cursor: string | undefined;
  for (let page = 0; page < MAX_UPSTREAM_PAGES; page++) {
    const result = await connection.request(method, cursor === undefined ? {} : { cursor });
    const pageItems = result[key];
    if (Array.isArray(pageItems)) {
      for (const item of pageItems) if (item && typeof item === 'object') items.push(item as RpcResult);
    }
    cursor = typeof result.nextCursor === 'string' && result.nextCursor !== '' ? result.nextCursor : undefined;
    if (cursor === undefined) break;
  }
  return items;
}

export function mergeLists(
  kind: ListKind,
  perUpstream: readonly { spec: UpstreamSpec; items: readonly RpcResult[] }[],
  naming: NamespaceOptions,
  logger: Logger,
): Omit<MergedList, 'version'> {
  const items: CatalogItem[] = [];
  const byName = new Map<string, CatalogItem>();
  const nameKind = kind === 'tools' || kind === 'prompts';
  for (const { spec, items: upstreamItems } of perUpstream) {
    for (const raw of upstreamItems) {
      const original = nameKind ? raw.name : kind === 'resources' ? raw.uri : raw.uriTemplate;
      if (typeof original !== 'string') continue;
      const exposed = nameKind
        ? namespacedName(spec.namePrefix, original, naming)
        : namespacedUri(spec.namePrefix, original);
      if (kind === 'tools' && !isValidToolName(exposed)) {
        logger.warn(
          { upstream: spec.name, tool: original, exposed },
          'tool hidden: its namespaced name is not a valid tool name',
        );
        continue;
      }
      const key = nameKind ? canonicalName(exposed) : exposed;
      const clash = byName.get(key);
      if (clash) {
        logger.warn(
          { kind, name: exposed, kept: clash.upstream, dropped: spec.name },
          'name clash between upstreams: the one configured first is kept',
        );
        continue;
      }
      const item = nameKind ? { ...raw, name: exposed } : rewriteListedUris(raw, spec.namePrefix);
      const entry: CatalogItem = { upstream: spec.name, original, exposed, item };
      items.push(entry);
      byName.set(key, entry);
    }
  }
  return { items, byName };
}

const templateCache = new Map<string, UriTemplate | null>();

function matchesTemplate(template: string, uri: string): boolean {
  let compiled = templateCache.get(template);
  if (compiled === undefined) {
    try {
      compiled = new UriTemplate(template);
    } catch {
      compiled = null;
    }
    templateCache.set(template, compiled);
  }
  return compiled?.match(uri) != null;
}
