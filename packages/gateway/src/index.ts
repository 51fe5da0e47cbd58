export { Catalog, type CatalogItem, type CatalogSource, LIST_KINDS, type ListKind } from './catalog.js';
export { CursorCodec } from './cursor.js';
export { toWireError } from './errors.js';
export {
  Gateway,
  type GatewayEvents,
  type GatewayOptions,
  type SessionObserver,
  type UpstreamHealth,
} from './gateway.js';
export type { ListFilter, OutboundFilter, OutboundMessage } from './hooks.js';
export { ListenTracker, resourceSubscriptionsOf } from './listen.js';
export { declaresMcpHeaders } from './param-headers.js';
export { type PoolLike, providerFromPool, type UpstreamProvider } from './provider.js';
export { createSealedState, type SealedState } from './sealed-state.js';
export { type AgentRequestIo, AgentSession, type SessionInit } from './session.js';
export { rewriteListedUris, rewriteOutboundParams, rewriteResultUris } from './uris.js';
