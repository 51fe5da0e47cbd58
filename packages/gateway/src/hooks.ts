import type { Identity, RequestContext, RpcParams } from '@portcullis/core';
import type { CatalogItem, ListKind } from './catalog.js';

/**
 * Whether a catalog item appears in the list this request reads (policy `hide`). Applied to the
 * merged list before paging, so pages stay full; cursors stay bound to the catalog version only.
 */
export type ListFilter = (ctx: RequestContext, kind: ListKind, item: CatalogItem) => boolean;

/** Something an upstream sends towards an agent that does not cross the pipeline as a result. */
export interface OutboundMessage {
  readonly method: string;
  readonly params: RpcParams;
  /** The upstream it comes from, when known. */
  readonly upstream: string | undefined;
  /** The agent request it relates to (its channel carries it), when there is one. */
  readonly related: RequestContext | undefined;
  /** The agent session's identity. */
  readonly identity: Identity;
}

/**
 * Transforms (redacts) the params of every notification and server-to-client request relayed from
 * upstreams to agents: on a request's channel (`ctx.agent.notify|request`: logging, progress,
 * sampling, elicitation during a call) and on the session's own stream outside calls. It may throw:
 * a notification is then dropped, a request refused (fail closed).
 */
export type OutboundFilter = (message: OutboundMessage) => Promise<RpcParams>;
