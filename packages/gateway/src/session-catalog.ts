import type { UpstreamSpec } from '@portcullis/config';
import { canonicalName, type NamespaceOptions, type RpcResult } from '@portcullis/core';
import type { UpstreamConnection } from '@portcullis/upstream';
import type { Logger } from 'pino';
import {
  type Catalog,
  type CatalogItem,
  type CatalogSource,
  type CatalogView,
  emptyLists,
  forgetLists,
  LIST_KINDS,
  type ListKind,
  listThrough,
  type MergedList,
  mergeLists,
  resolveUriIn,
  type UpstreamLists,
} from './catalog.js';

interface OwnUpstream {
  readonly connection: UpstreamConnection;
  readonly lists: UpstreamLists;
  readonly stopWatching: () => void;
}

const ALL_KINDS = Object.keys(LIST_KINDS) as ListKind[];

/**
 * One upstream session key's view of the catalog: the shared catalog, except that each
 * `per-session` upstream whose dedicated connection exists is listed through that connection (the
 * session's own child process may list other things than the primary's). Routing and list pages of
 * the session read this view, so a name listed here is routed here.
 *
 * Invariants: with no dedicated connection attached every call delegates to the shared catalog
 * (nothing is merged or stored per session). Otherwise `version` is `<shared>.<local>`: it moves
 * when the shared catalog changes or when anything of this view changes (attach, a list_changed or
 * (re)connect of a dedicated connection), so cursors minted before a change read as stale.
 */
export class SessionCatalog implements CatalogView {
  private readonly own = new Map<string, OwnUpstream>();
  private local = 0;
  private merged: Partial<Record<ListKind, MergedList>> = {};

  constructor(
    private readonly shared: Catalog,
    private readonly source: CatalogSource,
    private readonly naming: NamespaceOptions,
    private readonly logger: Logger,
  ) {}

  get version(): number | string {
    return this.own.size === 0 ? this.shared.version : `${this.shared.version}.${this.local}`;
  }

  /** Whether `upstream` is listed through a dedicated connection in this view. */
  isOwn(upstream: string): boolean {
    return this.own.has(upstream);
  }

  /** From now on `upstream` is listed through `connection` (the session's dedicated one). */
  attach(upstream: string, connection: UpstreamConnection): void {
    const previous = this.own.get(upstream);
    if (previous?.connection === connection) return;
    previous?.stopWatching();
    // Until it has connected, the primary's lists stand in; connecting (again) changes the view.
    const stopWatching = connection.onStatus((status) => {
      if (status === 'connected') this.invalidate(upstream, ALL_KINDS);
    });
    this.own.set(upstream, { connection, lists: emptyLists(), stopWatching });
    this.changed();
  }

  /** Forgets what the dedicated connection of `upstream` listed; false when it has none here. */
  invalidate(upstream: string, kinds: readonly ListKind[]): boolean {
    const own = this.own.get(upstream);
    if (!own) return false;
    forgetLists(own.lists, kinds);
    this.changed();
    return true;
  }

  dispose(): void {
    for (const own of this.own.values()) own.stopWatching();
    this.own.clear();
    this.merged = {};
  }

  async list(kind: ListKind): Promise<readonly CatalogItem[]> {
    if (this.own.size === 0) return this.shared.list(kind);
    return (await this.mergedList(kind)).items;
  }

  async resolveName(kind: 'tools' | 'prompts', name: string): Promise<CatalogItem | undefined> {
    if (this.own.size === 0) return this.shared.resolveName(kind, name);
    return (await this.mergedList(kind)).byName.get(canonicalName(name));
  }

  peekName(kind: 'tools' | 'prompts', name: string): CatalogItem | undefined {
    if (this.own.size === 0) return this.shared.peekName(kind, name);
    const cached = this.merged[kind];
    return cached && cached.version === this.version ? cached.byName.get(canonicalName(name)) : undefined;
  }

  resolveUri(uri: string): Promise<{ upstream: string; original: string } | undefined> {
    if (this.own.size === 0) return this.shared.resolveUri(uri);
    return resolveUriIn(
      uri,
      this.source.specs(),
      (kind) => this.mergedList(kind),
      (name) => Boolean((this.own.get(name)?.connection ?? this.source.primary(name))?.serverCapabilities?.resources),
    );
  }

  private changed(): void {
    this.local++;
    this.merged = {};
  }

  private async mergedList(kind: ListKind): Promise<MergedList> {
    const version = this.version;
    const cached = this.merged[kind];
    if (cached && cached.version === version) return cached;
    const perUpstream = await Promise.all(
      this.source.specs().map(async (spec) => ({ spec, items: await this.upstreamList(spec, kind) })),
    );
    const merged: MergedList = { ...mergeLists(kind, perUpstream, this.naming, this.logger), version };
    // A change that arrived while fetching leaves the result unmemoised, so the next call refetches.
    if (version === this.version) this.merged[kind] = merged;
    return merged;
  }

  private upstreamList(spec: UpstreamSpec, kind: ListKind): Promise<readonly RpcResult[]> {
    const own = this.own.get(spec.name);
    if (!own) return this.shared.upstreamList(spec, kind);
    if (own.connection.status !== 'connected' && own.lists.lastKnown[kind] === undefined)
      return this.shared.upstreamList(spec, kind);
    return listThrough(own.connection, own.lists, kind, this.logger);
  }
}
