import type { ColumnType } from 'kysely';

/** A timestamp column: read back as a `Date`, written as a `Date` or an ISO string (spool replay). */
export type Timestamp = ColumnType<Date, Date | string, Date | string>;
/** A jsonb column: any JSON value in, the parsed value out. */
export type Json = ColumnType<unknown, string, string>;

export interface SessionsTable {
  id: string;
  gateway_instance: string;
  identity_subject: string;
  identity_groups: Json;
  auth_method: string;
  client_name: string | null;
  client_version: string | null;
  era: string;
  protocol_version: string;
  front_transport: string;
  remote_address: string | null;
  started_at: Timestamp;
  ended_at: Timestamp | null;
  end_reason: string | null;
  event_count: number | null;
  head_hash: string | null;
}

export interface EventsTable {
  session_id: string;
  seq: number;
  occurred_at: Timestamp;
  direction: string;
  kind: string;
  method: string | null;
  rpc_id: string | null;
  upstream: string | null;
  payload: Json;
  size_bytes: number;
  latency_ms: number | null;
  prev_hash: string;
  hash: string;
}

export interface ToolCallsTable {
  id: string;
  session_id: string;
  rpc_id: string | null;
  request_seq: number | null;
  identity_subject: string;
  identity_groups: Json;
  upstream: string | null;
  tool: string;
  namespaced_tool: string;
  arguments: Json;
  decision: string;
  decision_rule: string | null;
  approval_ref: string | null;
  forwarded: boolean;
  requested_at: Timestamp;
  completed_at: Timestamp | null;
  outcome: string | null;
  result: Json | null;
  is_error: boolean | null;
  error_code: number | null;
  error_message: string | null;
  duration_ms: number | null;
  redaction: Json | null;
  /** The policy version that decided the call (migration 0002); null without a policy. */
  policy_version?: string | null;
}

export interface UpstreamsTable {
  name: string;
  transport: string;
  target: string | null;
  first_seen_at: Timestamp;
  last_seen_at: Timestamp;
}

export interface AdminAuditTable {
  id: string;
  occurred_at: Timestamp;
  actor: string;
  action: string;
  target: string | null;
  details: Json;
}

/** A gateway-issued API key (migration 0002): only a hash of the secret is stored. */
export interface ApiKeysTable {
  id: string;
  name: string;
  prefix: string;
  secret_hash: string;
  groups: Json;
  created_at: Timestamp;
  revoked_at: Timestamp | null;
  last_used_at: Timestamp | null;
  /** Migration 0006: may use the admin API's management endpoints. */
  admin: boolean;
}

/** An applied policy document (migration 0002): versions are kept, one is active. */
export interface PolicyVersionsTable {
  version: number;
  document: string;
  sha256: string;
  source: string | null;
  applied_at: Timestamp;
  applied_by: string;
  active: boolean;
}

export interface ApprovalsTable {
  id: string;
  status: string;
  mode: string;
  session_id: string;
  rpc_id: string | null;
  gateway_instance: string;
  identity_subject: string;
  identity_groups: Json;
  upstream: string;
  tool: string;
  namespaced_tool: string;
  arguments: Json;
  args_hash: string;
  rule: string | null;
  policy_version: string | null;
  reviewers: Json;
  required_count: number;
  on_timeout: string;
  webhook: string | null;
  requested_at: Timestamp;
  expires_at: Timestamp;
  decided_at: Timestamp | null;
  decided_by: string | null;
  reason: string | null;
  consumed_at: Timestamp | null;
  consumed_session: string | null;
}

export interface ApprovalVotesTable {
  approval_id: string;
  reviewer: string;
  reviewer_groups: Json;
  verdict: string;
  note: string | null;
  decided_at: Timestamp;
}

/** An upstream managed at run time (migration 0004); `removed` rows are tombstones. */
export interface ManagedUpstreamsTable {
  name: string;
  definition: Json;
  removed: boolean;
  revision: ColumnType<string, string | number, string | number>;
  created_at: Timestamp;
  updated_at: Timestamp;
  updated_by: string;
}

/** What one gateway instance last published about one upstream (migration 0004). */
export interface UpstreamStatusTable {
  instance: string;
  name: string;
  transport: string;
  status: string;
  era: string | null;
  protocol_version: string | null;
  last_error: string | null;
  catalog: Json;
  reported_at: Timestamp;
}

export interface Database {
  portcullis_sessions: SessionsTable;
  portcullis_events: EventsTable;
  portcullis_tool_calls: ToolCallsTable;
  portcullis_upstreams: UpstreamsTable;
  portcullis_admin_audit: AdminAuditTable;
  portcullis_approvals: ApprovalsTable;
  portcullis_approval_votes: ApprovalVotesTable;
  portcullis_api_keys: ApiKeysTable;
  portcullis_policy_versions: PolicyVersionsTable;
  portcullis_managed_upstreams: ManagedUpstreamsTable;
  portcullis_upstream_status: UpstreamStatusTable;
}
