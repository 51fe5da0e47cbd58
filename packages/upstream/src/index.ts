export {
  type BackoffOptions,
  backoffDelay,
  type CreateConnectionOptions,
  createUpstreamConnection,
  MODERN_PROTOCOL_VERSION,
} from './connection.js';
export { EraVerdictCache, type EraVerdictCacheOptions } from './era-cache.js';
export { normaliseUpstreamError, UpstreamErrorCode } from './errors.js';
export { UpstreamPool, type UpstreamPoolOptions, type UpstreamsChange } from './pool.js';
export { StaticUpstreamRegistry } from './registry.js';
export { type ProcessGroupStdioOptions, ProcessGroupStdioTransport, upstreamEnvironment } from './stdio-transport.js';
export type {
  ConnectionOptions,
  ProgressUpdate,
  ServerRequestHandler,
  UpstreamConnection,
  UpstreamRegistry,
  UpstreamRequestOptions,
  UpstreamStatus,
  UpstreamStatusReport,
} from './types.js';
