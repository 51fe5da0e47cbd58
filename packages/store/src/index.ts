export { canonicalJson, chainHash, GENESIS_HASH, type HashedEventContent } from './canonical.js';
export { isUnavailable, toStoreError } from './errors.js';
export { uuidv7 } from './ids.js';
export { PGliteDialect } from './pglite-dialect.js';
export type { Database } from './schema.js';
export {
  createRecordStage,
  createSessionRecorder,
  RecordAnnotations,
  type RecordStageOptions,
  type SessionRecorder,
  STORE_UNAVAILABLE_RPC_CODE,
} from './stage.js';
export {
  type AdminActionInput,
  type BatchOptions,
  type BrokenLink,
  type EventDirection,
  type EventInput,
  type EventKind,
  type MigrationStatus,
  openStore,
  type PruneReport,
  parseDuration,
  redactUrl,
  Store,
  type StoreFailureMode,
  type StoreHealth,
  type StoreOp,
  type StoreOptions,
  type ToolCallCompletion,
  type ToolCallInput,
  type ToolCallOutcome,
  type UpstreamInput,
  type VerifyReport,
} from './store.js';
