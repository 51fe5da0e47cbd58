export {
  API_KEY_PREFIX,
  type ApiKeyInfo,
  type CreatedApiKey,
  createApiKey,
  findApiKeyBySecret,
  generateApiKeySecret,
  hashApiKeySecret,
  isApiKeySecret,
  listApiKeys,
  revokeApiKey,
  touchApiKey,
  validateApiKeyName,
} from './api-keys.js';
export {
  APPROVAL_CHANNEL,
  ApprovalError,
  type ApprovalErrorCode,
  type ApprovalListener,
  type ApprovalRecord,
  type ApprovalReviewers,
  type ApprovalStatus,
  ApprovalStore,
  type ApprovalVote,
  describeReviewers,
  isNamedReviewer,
  listenForApprovals,
  type NewApproval,
  type ReviewerDecision,
} from './approvals.js';
export { canonicalJson, chainHash, GENESIS_HASH, type HashedEventContent } from './canonical.js';
export { isUnavailable, toStoreError } from './errors.js';
export { uuidv7 } from './ids.js';
export {
  changeManagedUpstreams,
  listManagedUpstreams,
  listUpstreamStatus,
  type ManagedUpstream,
  type ManagedUpstreamChange,
  managedUpstreamsRevision,
  type PublishedUpstreamStatus,
  publishUpstreamStatus,
  type UpstreamStatusInput,
  withdrawUpstreamStatus,
} from './managed-upstreams.js';
export { PGliteDialect } from './pglite-dialect.js';
export {
  activePolicyVersion,
  activePolicyVersionNumber,
  applyPolicyVersion,
  listPolicyVersions,
  type PolicyVersionInfo,
  policyVersionLabel,
  type StoredPolicyVersion,
} from './policy-versions.js';
export {
  getSession,
  linkReplay,
  listSessions,
  type RecordedEvent,
  type RecordedToolCall,
  type SessionFilter,
  type SessionSummary,
  sessionEvents,
  sessionKnown,
  sessionToolCalls,
} from './queries.js';
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
