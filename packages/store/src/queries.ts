import { type Kysely, sql } from 'kysely';
import { toStoreError } from './errors.js';
import type { Database } from './schema.js';

/**
 * Read-side queries of the session log for reviewers (`portcullis sessions`, `portcullis replay`).
 * Each one is shaped for an index of the schema: sessions by identity and time, tool calls by
 * session, by namespaced tool and time, events by session (the primary key, in sequence order).
 */

export interface SessionFilter {
  /** Identity subject, exactly. */
  readonly identity?: string | undefined;
  /** Sessions with at least one tool call routed to this upstream. */
  readonly upstream?: string | undefined;
  /** Sessions with at least one call of this tool (namespaced, as the agent saw it, or as the upstream knows it). */
  readonly tool?: string | undefined;
  /** Sessions with at least one tool call of this decision (`allow`, `deny`, `approve`, …). */
  readonly decision?: string | undefined;
  /** Sessions started at or after this time. */
  readonly since?: Date | undefined;
  /** At most this many, newest first (default 50). */
  readonly limit?: number | undefined;
}

export interface SessionSummary {
  readonly id: string;
  readonly gatewayInstance: string;
  readonly identity: string;
  readonly groups: readonly string[];
  readonly authMethod: string;
  readonly clientName: string | null;
  readonly clientVersion: string | null;
  readonly era: string;
  readonly protocolVersion: string;
  readonly frontTransport: string;
  readonly remoteAddress: string | null;
  readonly startedAt: string;
  readonly endedAt: string | null;
  readonly endReason: string | null;
  readonly eventCount: number | null;
  readonly headHash: string | null;
  /** The session this one re-ran (`portcullis replay --execute`), else null. */
  readonly replayOf: string | null;
  readonly toolCalls: number;
  readonly denied: number;
  readonly upstreams: readonly string[];
}

export interface RecordedEvent {
  readonly seq: number;
  readonly occurredAt: string;
  readonly direction: string;
  readonly kind: string;
  readonly method: string | null;
  /** The JSON-RPC id as recorded (JSON-encoded), or null. */
  readonly rpcId: string | null;
  readonly upstream: string | null;
  readonly payload: unknown;
  readonly sizeBytes: number;
  readonly latencyMs: number | null;
  readonly prevHash: string;
  readonly hash: string;
}

export interface RecordedToolCall {
  readonly id: string;
  readonly rpcId: string | null;
  readonly requestSeq: number | null;
  readonly identity: string;
  readonly groups: readonly string[];
  readonly upstream: string | null;
  readonly tool: string;
  readonly namespacedTool: string;
  readonly arguments: unknown;
  readonly decision: string;
  readonly decisionRule: string | null;
  readonly approvalRef: string | null;
  readonly forwarded: boolean;
  readonly requestedAt: string;
  readonly completedAt: string | null;
  readonly outcome: string | null;
  readonly result: unknown;
  readonly isError: boolean | null;
  readonly errorCode: number | null;
  readonly errorMessage: string | null;
  readonly durationMs: number | null;
  readonly redaction: unknown;
}

interface SessionRowOut {
  id: string;
  gateway_instance: string;
  identity_subject: string;
  identity_groups: unknown;
  auth_method: string;
  client_name: string | null;
  client_version: string | null;
  era: string;
  protocol_version: string;
  front_transport: string;
  remote_address: string | null;
  started_at: Date | string;
  ended_at: Date | string | null;
  end_reason: string | null;
  event_count: number | null;
  head_hash: string | null;
  replay_of: string | null;
  tool_calls: string | number | null;
  denied: string | number | null;
  upstreams: unknown;
}

const iso = (value: Date | string): string => (value instanceof Date ? value : new Date(value)).toISOString();
const isoOrNull = (value: Date | string | null): string | null => (value === null ? null : iso(value));
const strings = (value: unknown): string[] =>
  Array.isArray(value) ? value.filter((item): item is string => typeof item === 'string') : [];

function toSummary(row: SessionRowOut): SessionSummary {
  return {
    id: row.id,
    gatewayInstance: row.gateway_instance,
    identity: row.identity_subject,
    groups: strings(row.identity_groups),
    authMethod: row.auth_method,
    clientName: row.client_name,
    clientVersion: row.client_version,
    era: row.era,
    protocolVersion: row.protocol_version,
    frontTransport: row.front_transport,
    remoteAddress: row.remote_address,
    startedAt: iso(row.started_at),
    endedAt: isoOrNull(row.ended_at),
    endReason: row.end_reason,
    eventCount: row.event_count,
    headHash: row.head_hash,
    replayOf: row.replay_of ?? null,
    toolCalls: Number(row.tool_calls ?? 0),
    denied: Number(row.denied ?? 0),
    upstreams: strings(row.upstreams),
  };
}

/** Whether `replay_of` exists yet (migration `0005_replay_link`): the read commands do not migrate. */
async function hasReplayColumn(db: Kysely<Database>): Promise<boolean> {
  const { rows } = await sql<{ present: boolean }>`select exists (
      select 1 from information_schema.columns
      where table_name = 'portcullis_sessions' and column_name = 'replay_of' and table_schema = current_schema()
    ) as present`.execute(db);
  return rows[0]?.present === true;
}

function sessionSelect(replayColumn: boolean) {
  return sql`s.id, s.gateway_instance, s.identity_subject, s.identity_groups, s.auth_method, s.client_name,
    s.client_version, s.era, s.protocol_version, s.front_transport, s.remote_address, s.started_at, s.ended_at,
    s.end_reason, s.event_count, s.head_hash, ${replayColumn ? sql`s.replay_of` : sql`null::text`} as replay_of,
    (select count(*) from portcullis_tool_calls c where c.session_id = s.id) as tool_calls,
    (select count(*) from portcullis_tool_calls c where c.session_id = s.id and c.decision in ('deny', 'hide')) as denied,
    (select coalesce(jsonb_agg(distinct c.upstream), '[]'::jsonb) from portcullis_tool_calls c
      where c.session_id = s.id and c.upstream is not null) as upstreams`;
}

/** Sessions matching every given filter, newest first. */
export async function listSessions(db: Kysely<Database>, filter: SessionFilter = {}): Promise<SessionSummary[]> {
  try {
    const replayColumn = await hasReplayColumn(db);
    const conditions = [sql`true`];
    if (filter.identity !== undefined) conditions.push(sql`s.identity_subject = ${filter.identity}`);
    if (filter.since !== undefined) conditions.push(sql`s.started_at >= ${filter.since.toISOString()}::timestamptz`);
    // Tool-call criteria: one correlated probe per session, on the by-session index (and the
    // tool+time index when a tool is named).
    const callConditions = [];
    if (filter.upstream !== undefined) callConditions.push(sql`c.upstream = ${filter.upstream}`);
    if (filter.tool !== undefined)
      callConditions.push(sql`(c.namespaced_tool = ${filter.tool} or c.tool = ${filter.tool})`);
    if (filter.decision !== undefined) callConditions.push(sql`c.decision = ${filter.decision}`);
    if (filter.since !== undefined && filter.tool !== undefined) {
      callConditions.push(sql`c.requested_at >= ${filter.since.toISOString()}::timestamptz`);
    }
    if (callConditions.length > 0) {
      conditions.push(
        sql`exists (select 1 from portcullis_tool_calls c where c.session_id = s.id and ${sql.join(callConditions, sql` and `)})`,
      );
    }
    const limit = Math.max(1, Math.min(filter.limit ?? 50, 10_000));
    const { rows } = await sql<SessionRowOut>`select ${sessionSelect(replayColumn)}
      from portcullis_sessions s
      where ${sql.join(conditions, sql` and `)}
      order by s.started_at desc, s.id desc
      limit ${limit}`.execute(db);
    return rows.map(toSummary);
  } catch (error) {
    throw toStoreError(error, 'list sessions');
  }
}

/** One session, or undefined when the log has no row for it. */
export async function getSession(db: Kysely<Database>, sessionId: string): Promise<SessionSummary | undefined> {
  try {
    const replayColumn = await hasReplayColumn(db);
    const { rows } = await sql<SessionRowOut>`select ${sessionSelect(replayColumn)}
      from portcullis_sessions s where s.id = ${sessionId}`.execute(db);
    const row = rows[0];
    return row === undefined ? undefined : toSummary(row);
  } catch (error) {
    throw toStoreError(error, 'read session');
  }
}

/** A session's events in sequence order, from `afterSeq + 1` (paged by the caller for long sessions). */
export async function sessionEvents(
  db: Kysely<Database>,
  sessionId: string,
  options: { afterSeq?: number; limit?: number } = {},
): Promise<RecordedEvent[]> {
  try {
    const rows = await db
      .selectFrom('portcullis_events')
      .selectAll()
      .where('session_id', '=', sessionId)
      .where('seq', '>', options.afterSeq ?? 0)
      .orderBy('seq')
      .limit(options.limit ?? 100_000)
      .execute();
    return rows.map((row) => ({
      seq: row.seq,
      occurredAt: iso(row.occurred_at),
      direction: row.direction,
      kind: row.kind,
      method: row.method,
      rpcId: row.rpc_id,
      upstream: row.upstream,
      payload: row.payload,
      sizeBytes: row.size_bytes,
      latencyMs: row.latency_ms,
      prevHash: row.prev_hash,
      hash: row.hash,
    }));
  } catch (error) {
    throw toStoreError(error, 'read events');
  }
}

/** A session's tool calls in the order they were requested. */
export async function sessionToolCalls(db: Kysely<Database>, sessionId: string): Promise<RecordedToolCall[]> {
  try {
    const rows = await db
      .selectFrom('portcullis_tool_calls')
      .selectAll()
      .where('session_id', '=', sessionId)
      .orderBy('requested_at')
      .orderBy('request_seq')
      .orderBy('id')
      .execute();
    return rows.map((row) => ({
      id: row.id,
      rpcId: row.rpc_id,
      requestSeq: row.request_seq,
      identity: row.identity_subject,
      groups: strings(row.identity_groups),
      upstream: row.upstream,
      tool: row.tool,
      namespacedTool: row.namespaced_tool,
      arguments: row.arguments,
      decision: row.decision,
      decisionRule: row.decision_rule,
      approvalRef: row.approval_ref,
      forwarded: row.forwarded,
      requestedAt: iso(row.requested_at),
      completedAt: isoOrNull(row.completed_at),
      outcome: row.outcome,
      result: row.result,
      isError: row.is_error,
      errorCode: row.error_code,
      errorMessage: row.error_message,
      durationMs: row.duration_ms,
      redaction: row.redaction,
    }));
  } catch (error) {
    throw toStoreError(error, 'read tool calls');
  }
}

/** Whether the log knows the session: a row, or at least events (its start may still be spooled). */
export async function sessionKnown(db: Kysely<Database>, sessionId: string): Promise<boolean> {
  const row = await db.selectFrom('portcullis_sessions').select('id').where('id', '=', sessionId).executeTakeFirst();
  if (row !== undefined) return true;
  const event = await db
    .selectFrom('portcullis_events')
    .select('seq')
    .where('session_id', '=', sessionId)
    .limit(1)
    .executeTakeFirst();
  return event !== undefined;
}

/** Marks `sessionId` as a re-run of `originalId` (the row must be written: flush first). */
export async function linkReplay(db: Kysely<Database>, sessionId: string, originalId: string): Promise<void> {
  try {
    await sql`update portcullis_sessions set replay_of = ${originalId} where id = ${sessionId}`.execute(db);
  } catch (error) {
    throw toStoreError(error, 'link replay');
  }
}
