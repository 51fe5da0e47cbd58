import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import type { Identity, SessionInfo } from '@portcullis/core';
import { PortcullisError } from '@portcullis/core';
import {
  type Insertable,
  Kysely,
  type MigrationResultSet,
  Migrator,
  PostgresDialect,
  type RawBuilder,
  sql,
} from 'kysely';
import pg from 'pg';
import {
  chainHash,
  chainHashWithPayloadText,
  GENESIS_HASH,
  type HashedEventContent,
  storableCanonicalJson,
  toStorableJson,
} from './canonical.js';
import { lockDataDir } from './data-dir-lock.js';
import { toStoreError } from './errors.js';
import { uuidv7 } from './ids.js';
import { MIGRATION_LOCK_TABLE, MIGRATION_TABLE, migrationProvider } from './migrations.js';
import { PGliteDialect } from './pglite-dialect.js';
import { createFreshPGlite, isFreshDataDir } from './pglite-template.js';
import type { Database, EventsTable, SessionsTable, ToolCallsTable } from './schema.js';
import { readSpoolFile, removeSpoolFile, Spool } from './spool.js';

export type StoreFailureMode = 'closed' | 'open';
export type StoreHealth = 'up' | 'down';

export interface BatchOptions {
  /** Flush as soon as this many operations are queued (default 500). */
  readonly maxEvents?: number;
  /** Flush at most this long after the first queued operation (default 50 ms). */
  readonly intervalMs?: number;
  /** Producers wait (backpressure) while this many operations are queued (default 20,000). */
  readonly maxQueue?: number;
}

export interface StoreOptions {
  /** A Postgres connection string; without it an embedded PGlite database in `dataDir` is used. */
  readonly url?: string | undefined;
  /** PGlite data directory (default `./.portcullis/data`); `memory://` keeps it in memory. */
  readonly dataDir?: string | undefined;
  /** `closed` (default): refuse new tool calls while the store is down. `open`: let them through, spool. */
  readonly onStoreFailure?: StoreFailureMode;
  /** Where operations are spooled while the store is down (default: `spool` beside the data dir, or `./.portcullis/spool`). */
  readonly spoolDir?: string | undefined;
  readonly batch?: BatchOptions;
  /** Id of this gateway process, recorded on its sessions and naming its spool file (default: a fresh UUIDv7). */
  readonly gatewayInstance?: string;
  /** How often a down store is probed for recovery (default 1,000 ms). */
  readonly probeIntervalMs?: number;
  /** Postgres: connection timeout (default 2,000 ms) and pool size (default 10). */
  readonly connectTimeoutMs?: number;
  readonly poolSize?: number;
  /** Run migrations at open (default true). */
  readonly migrate?: boolean;
  /** Replay spool files left by earlier runs at open (default true; `portcullis db status` opens without). */
  readonly replaySpool?: boolean;
  /** Failures that are handled (spooled, retried) but should be logged. */
  readonly onError?: (error: PortcullisError) => void;
}

export type EventDirection = 'from_agent' | 'to_agent';
export type EventKind = 'request' | 'response' | 'notification' | 'approval';

export interface EventInput {
  readonly sessionId: string;
  readonly direction: EventDirection;
  readonly kind: EventKind;
  readonly method?: string | undefined;
  /** The JSON-RPC id, as sent (string or number). */
  readonly rpcId?: string | number | undefined;
  readonly upstream?: string | undefined;
  /** The message as delivered. */
  readonly payload: unknown;
  readonly latencyMs?: number | undefined;
  /** Epoch milliseconds (default now). */
  readonly at?: number;
}

export interface ToolCallInput {
  readonly sessionId: string;
  readonly rpcId?: string | number | undefined;
  readonly requestSeq?: number | undefined;
  readonly identity: Identity;
  readonly upstream?: string | undefined;
  readonly tool: string;
  readonly namespacedTool: string;
  readonly arguments: unknown;
  readonly decision: string;
  readonly decisionRule?: string | undefined;
  readonly approvalRef?: string | undefined;
  /** The policy version that decided the call (`v3`, `file:sha256:…`). */
  readonly policyVersion?: string | undefined;
  readonly at?: number;
}

export type ToolCallOutcome =
  | { readonly kind: 'result'; readonly result: unknown; readonly isError: boolean }
  | { readonly kind: 'rpc_error'; readonly code: number; readonly message: string };

export interface ToolCallCompletion {
  readonly outcome: ToolCallOutcome;
  readonly durationMs: number;
  readonly redaction?: unknown;
  readonly at?: number;
}

export interface UpstreamInput {
  readonly name: string;
  readonly transport: string;
  /** `url` for HTTP upstreams (credentials and query are stripped), `command` for stdio ones (arguments are not recorded). */
  readonly url?: string | undefined;
  readonly command?: string | undefined;
}

export interface AdminActionInput {
  readonly actor: string;
  readonly action: string;
  readonly target?: string | undefined;
  readonly details?: Record<string, unknown>;
}

export interface BrokenLink {
  readonly sessionId: string;
  /** The first event whose link does not verify (for a truncated tail: the first missing one). */
  readonly seq: number;
  readonly reason: string;
}

export interface VerifyReport {
  readonly ok: boolean;
  readonly sessionsChecked: number;
  readonly eventsChecked: number;
  /** One entry per broken session: its first broken link. */
  readonly broken: readonly BrokenLink[];
}

export interface PruneReport {
  readonly sessions: number;
  readonly events: number;
  readonly toolCalls: number;
}

/** What a prune would delete, counted at `cutoff` (a dry run changes nothing). */
export interface PrunePlan extends PruneReport {
  readonly cutoff: Date;
}

export interface PruneOptions {
  /** A `Date`, or a duration before now (`90d`, `12h`). */
  readonly olderThan: Date | string;
  /** Sessions deleted per transaction (default 100). */
  readonly batchSize?: number;
  /** Called after each committed batch with the totals so far. */
  readonly onProgress?: (deleted: PruneReport) => void;
  /** Once aborted, no further batch starts; what was committed so far is returned. */
  readonly signal?: AbortSignal;
}

export interface MigrationStatus {
  readonly name: string;
  readonly executedAt: Date | undefined;
}

type SessionRow = Insertable<SessionsTable>;
type EventRow = Insertable<EventsTable>;
type ToolCallRow = Insertable<ToolCallsTable>;

/** One queued or spooled store operation. Plain JSON (timestamps as ISO strings) so it can be spooled. */
export type StoreOp =
  | { readonly op: 'session'; readonly row: SessionRow }
  | {
      readonly op: 'sessionEnd';
      readonly id: string;
      readonly endedAt: string;
      readonly reason: string;
      readonly eventCount: number;
      readonly headHash: string;
    }
  | { readonly op: 'event'; readonly row: EventRow }
  | { readonly op: 'toolCall'; readonly row: ToolCallRow }
  | {
      readonly op: 'toolCallOutcome';
      readonly id: string;
      readonly completedAt: string;
      readonly outcome: string;
      readonly result: string | null;
      readonly isError: boolean | null;
      readonly errorCode: number | null;
      readonly errorMessage: string | null;
      readonly durationMs: number;
      readonly redaction: string | null;
    };

interface PendingWriteAhead {
  readonly row: ToolCallRow & { id: string };
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

interface ChainState {
  seq: number;
  prevHash: string;
  loading: Promise<void> | undefined;
}

/** Postgres caps one statement at 65,535 parameters; the widest table has 25 columns. */
const MAX_ROWS_PER_INSERT = 2_000;

export async function openStore(options: StoreOptions = {}): Promise<Store> {
  const url = options.url;
  let db: Kysely<Database>;
  let closeDriver: () => Promise<void>;
  let dialect: 'postgres' | 'pglite';
  let defaultSpool: string;
  if (url !== undefined && url !== '') {
    const pool = new pg.Pool({
      connectionString: url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: options.connectTimeoutMs ?? 2_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle client whose server went away emits here; the next query reports it at the boundary.
    pool.on('error', () => {});
    // A checked-out client (kysely holds one per query or transaction) may lose its server too: the
    // failing query reports it; without a listener the client's 'error' event would crash the process.
    pool.on('connect', (client) => client.on('error', () => {}));
    db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    closeDriver = async () => {};
    dialect = 'postgres';
    defaultSpool = resolve('.portcullis', 'spool');
  } else {
    const dataDir = options.dataDir ?? join('.portcullis', 'data');
    const inMemory = dataDir.startsWith('memory://');
    if (!inMemory) mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const unlock = inMemory ? () => undefined : lockDataDir(resolve(dataDir));
    let lite: PGlite;
    try {
      const where = inMemory ? dataDir : resolve(dataDir);
      lite = isFreshDataDir(where) ? await createFreshPGlite(where) : await PGlite.create(where);
    } catch (error) {
      unlock();
      throw new PortcullisError('store.unavailable', `cannot open the embedded database in ${dataDir}`, {
        cause: error,
      });
    }
    db = new Kysely<Database>({ dialect: new PGliteDialect(lite) });
    closeDriver = async () => {
      try {
        await lite.close();
      } finally {
        unlock();
      }
    };
    dialect = 'pglite';
    defaultSpool = inMemory ? resolve('.portcullis', 'spool') : join(resolve(dataDir), '..', 'spool');
  }
  const store = new Store(db, dialect, closeDriver, { ...options, spoolDir: options.spoolDir ?? defaultSpool });
  try {
    if (options.migrate !== false) await store.migrateToLatest();
    if (options.replaySpool !== false) await store.replayLeftovers();
  } catch (error) {
    await store.close().catch(() => {});
    throw toStoreError(error, 'open');
  }
  return store;
}

/**
 * The session log. One instance per gateway process; it owns the sessions it starts (their
 * sequence numbers and hash chains are assigned here, in memory, in call order).
 */
export class Store {
  readonly db: Kysely<Database>;
  readonly dialect: 'postgres' | 'pglite';
  readonly mode: StoreFailureMode;
  readonly instance: string;
  readonly spool: Spool;

  readonly #closeDriver: () => Promise<void>;
  readonly #maxBatch: number;
  readonly #intervalMs: number;
  readonly #maxQueue: number;
  readonly #probeIntervalMs: number;
  readonly #onError: (error: PortcullisError) => void;

  #queue: StoreOp[] = [];
  #timer: NodeJS.Timeout | undefined;
  #flushing: Promise<void> | undefined;
  #spaceWaiters: Array<() => void> = [];
  #health: StoreHealth = 'up';
  #probe: NodeJS.Timeout | undefined;
  #recovering: Promise<void> | undefined;
  #closed = false;
  readonly #chains = new Map<string, ChainState>();
  #writeAhead: PendingWriteAhead[] = [];
  #writeAheadInFlight: Promise<void> | undefined;

  constructor(
    db: Kysely<Database>,
    dialect: 'postgres' | 'pglite',
    closeDriver: () => Promise<void>,
    options: StoreOptions & { spoolDir: string },
  ) {
    this.db = db;
    this.dialect = dialect;
    this.#closeDriver = closeDriver;
    this.mode = options.onStoreFailure ?? 'closed';
    this.instance = options.gatewayInstance ?? uuidv7();
    this.spool = new Spool(options.spoolDir, this.instance);
    this.#maxBatch = Math.max(1, options.batch?.maxEvents ?? 500);
    this.#intervalMs = Math.max(0, options.batch?.intervalMs ?? 50);
    this.#maxQueue = Math.max(this.#maxBatch, options.batch?.maxQueue ?? 20_000);
    this.#probeIntervalMs = options.probeIntervalMs ?? 1_000;
    this.#onError = options.onError ?? (() => {});
  }

  /** `down` from the first failed write until the store answers again and the spool is replayed. */
  get health(): StoreHealth {
    return this.#health;
  }

  /** Operations waiting for the next batch. */
  get queued(): number {
    return this.#queue.length;
  }

  // ---------------------------------------------------------------- migrations

  #migrator(): Migrator {
    return new Migrator({
      db: this.db,
      provider: migrationProvider,
      migrationTableName: MIGRATION_TABLE,
      migrationLockTableName: MIGRATION_LOCK_TABLE,
    });
  }

  /** Applies every pending migration (idempotent; safe when several processes start at once). */
  async migrateToLatest(): Promise<{ applied: string[] }> {
    let outcome: MigrationResultSet;
    try {
      outcome = await this.#migrator().migrateToLatest();
    } catch (error) {
      throw toStoreError(error, 'migrate');
    }
    if (outcome.error !== undefined) throw toStoreError(outcome.error, 'migrate');
    return {
      applied: (outcome.results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName),
    };
  }

  async status(): Promise<MigrationStatus[]> {
    try {
      const migrations = await this.#migrator().getMigrations();
      return migrations.map((m) => ({ name: m.name, executedAt: m.executedAt }));
    } catch (error) {
      throw toStoreError(error, 'status');
    }
  }

  // ---------------------------------------------------------------- sessions

  /** Records a session's start (batched) and begins its hash chain. */
  recordSessionStart(session: SessionInfo, identity: Identity, at: number = Date.now()): Promise<void> {
    this.#assertOpen();
    this.#chains.set(session.id, { seq: 0, prevHash: GENESIS_HASH, loading: undefined });
    return this.#enqueue({
      op: 'session',
      row: {
        id: session.id,
        gateway_instance: this.instance,
        identity_subject: identity.subject,
        identity_groups: JSON.stringify([...identity.groups]),
        auth_method: identity.authMethod,
        client_name: session.clientInfo?.name ?? null,
        client_version: session.clientInfo?.version ?? null,
        era: session.era,
        protocol_version: session.protocolVersion,
        front_transport: session.frontTransport,
        remote_address: session.remoteAddress ?? null,
        started_at: new Date(at).toISOString(),
        ended_at: null,
        end_reason: null,
      },
    });
  }

  /** Records a session's end with its chain head, and forgets its chain state. */
  async recordSessionEnd(sessionId: string, reason: string, at: number = Date.now()): Promise<void> {
    this.#assertOpen();
    const chain = await this.#chain(sessionId);
    this.#chains.delete(sessionId);
    await this.#enqueue({
      op: 'sessionEnd',
      id: sessionId,
      endedAt: new Date(at).toISOString(),
      reason,
      eventCount: chain.seq,
      headHash: chain.prevHash,
    });
  }

  // ---------------------------------------------------------------- events

  /**
   * Appends an event to its session's chain and queues it for the next batch. Resolves with its
   * sequence number once it is queued (it waits only when the queue is full: backpressure).
   */
  async recordEvent(input: EventInput): Promise<number> {
    this.#assertOpen();
    // One pass: the canonical storable text is both what the row stores and what the hash covers.
    const payloadText = storableCanonicalJson(input.payload);
    const chain = await this.#chain(input.sessionId);
    chain.seq += 1;
    const content: Omit<HashedEventContent, 'payload'> = {
      sessionId: input.sessionId,
      seq: chain.seq,
      occurredAt: new Date(input.at ?? Date.now()).toISOString(),
      direction: input.direction,
      kind: input.kind,
      method: input.method ?? null,
      rpcId: input.rpcId === undefined ? null : JSON.stringify(input.rpcId),
      upstream: input.upstream ?? null,
      sizeBytes: Buffer.byteLength(payloadText),
      latencyMs: input.latencyMs ?? null,
    };
    const hash = chainHashWithPayloadText(chain.prevHash, content, payloadText);
    const row: EventRow = {
      session_id: content.sessionId,
      seq: content.seq,
      occurred_at: content.occurredAt,
      direction: content.direction,
      kind: content.kind,
      method: content.method,
      rpc_id: content.rpcId,
      upstream: content.upstream,
      payload: payloadText,
      size_bytes: content.sizeBytes,
      latency_ms: content.latencyMs,
      prev_hash: chain.prevHash,
      hash,
    };
    chain.prevHash = hash;
    await this.#enqueue({ op: 'event', row });
    return content.seq;
  }

  async #chain(sessionId: string): Promise<ChainState> {
    let chain = this.#chains.get(sessionId);
    if (chain === undefined) {
      // A session this process did not start (e.g. started before a restart): continue its chain.
      const state: ChainState = { seq: 0, prevHash: GENESIS_HASH, loading: undefined };
      state.loading = this.#loadChainHead(sessionId, state).finally(() => {
        state.loading = undefined;
      });
      this.#chains.set(sessionId, state);
      chain = state;
    }
    if (chain.loading !== undefined) await chain.loading;
    return chain;
  }

  async #loadChainHead(sessionId: string, state: ChainState): Promise<void> {
    await this.flush();
    try {
      const last = await this.db
        .selectFrom('portcullis_events')
        .select(['seq', 'hash'])
        .where('session_id', '=', sessionId)
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      if (last !== undefined) {
        state.seq = last.seq;
        state.prevHash = last.hash;
      }
    } catch (error) {
      this.#chains.delete(sessionId);
      throw toStoreError(error, 'load chain head');
    }
  }

  // ---------------------------------------------------------------- tool calls

  /**
   * The write-ahead record of a tool call: resolves only once the row is committed (or, in `open`
   * mode with the store down, fsynced to the spool). In `closed` mode with the store down it
   * rejects with `store.unavailable` and the call must not be forwarded.
   */
  async recordToolCall(input: ToolCallInput): Promise<string> {
    this.#assertOpen();
    const id = uuidv7();
    const row = toolCallRequestRow(id, input, true);
    if (this.#health === 'down') return this.#writeAheadWhileDown(id, row, undefined);
    await new Promise<void>((resolveCommit, rejectCommit) => {
      this.#writeAhead.push({ row, resolve: resolveCommit, reject: rejectCommit });
      if (this.#writeAheadInFlight === undefined) this.#writeAheadInFlight = this.#commitWriteAhead();
    });
    return id;
  }

  /**
   * Group commit: the write-ahead records waiting when a commit starts share one insert and one
   * commit (one WAL flush). A lone call goes at once; calls that arrive during a commit ride the next.
   */
  async #commitWriteAhead(): Promise<void> {
    try {
      while (this.#writeAhead.length > 0) {
        const group = this.#writeAhead.splice(0, MAX_ROWS_PER_INSERT);
        try {
          await this.db
            .insertInto('portcullis_tool_calls')
            .values(group.map((w) => w.row))
            .execute();
          for (const w of group) w.resolve();
        } catch (error) {
          const storeError = toStoreError(error, 'write-ahead tool call');
          if (storeError.code === 'store.unavailable') {
            this.#markDown(storeError);
            for (const w of group) this.#settleWhileDown(w, storeError);
          } else if (group.length === 1) {
            group[0]?.reject(storeError);
          } else {
            // One bad row must not fail the others: each on its own.
            for (const w of group) {
              try {
                await this.db.insertInto('portcullis_tool_calls').values(w.row).execute();
                w.resolve();
              } catch (single) {
                const singleError = toStoreError(single, 'write-ahead tool call');
                if (singleError.code === 'store.unavailable') {
                  this.#markDown(singleError);
                  this.#settleWhileDown(w, singleError);
                } else {
                  w.reject(singleError);
                }
              }
            }
          }
        }
      }
    } finally {
      this.#writeAheadInFlight = undefined;
    }
  }

  #settleWhileDown(w: PendingWriteAhead, cause: PortcullisError): void {
    try {
      this.#writeAheadWhileDown(w.row.id, w.row, cause);
      w.resolve();
    } catch (error) {
      w.reject(error);
    }
  }

  #writeAheadWhileDown(id: string, row: ToolCallRow, cause: PortcullisError | undefined): string {
    if (this.mode === 'closed') {
      throw (
        cause ??
        new PortcullisError(
          'store.unavailable',
          'session log store unavailable: tool calls are refused until it is back',
        )
      );
    }
    try {
      this.spool.append([{ op: 'toolCall', row } satisfies StoreOp]);
    } catch (error) {
      throw new PortcullisError('store.unavailable', 'session log store and spool both unavailable', { cause: error });
    }
    return id;
  }

  /** A tool call that was never forwarded (denied, refused): recorded whole, in the next batch. */
  recordUnforwardedToolCall(input: ToolCallInput, completion: ToolCallCompletion): Promise<string> {
    this.#assertOpen();
    const id = uuidv7();
    const outcome = outcomeColumns(completion);
    return this.#enqueue({
      op: 'toolCall',
      row: {
        ...toolCallRequestRow(id, input, false),
        completed_at: outcome.completedAt,
        outcome: outcome.outcome,
        result: outcome.result,
        is_error: outcome.isError,
        error_code: outcome.errorCode,
        error_message: outcome.errorMessage,
        duration_ms: outcome.durationMs,
        redaction: outcome.redaction,
      },
    }).then(() => id);
  }

  /** Queues the outcome of a write-ahead recorded tool call. */
  recordToolCallOutcome(id: string, completion: ToolCallCompletion): Promise<void> {
    this.#assertOpen();
    return this.#enqueue({ op: 'toolCallOutcome', id, ...outcomeColumns(completion) });
  }

  // ---------------------------------------------------------------- upstreams, admin audit

  /** Records the configured upstreams. Never their headers, environment or arguments. */
  async upsertUpstreams(upstreams: readonly UpstreamInput[], at: number = Date.now()): Promise<void> {
    if (upstreams.length === 0) return;
    const now = new Date(at).toISOString();
    try {
      await this.db
        .insertInto('portcullis_upstreams')
        .values(
          upstreams.map((u) => ({
            name: u.name,
            transport: u.transport,
            target: u.url !== undefined ? redactUrl(u.url) : (u.command ?? null),
            first_seen_at: now,
            last_seen_at: now,
          })),
        )
        .onConflict((oc) =>
          oc.column('name').doUpdateSet((eb) => ({
            transport: eb.ref('excluded.transport'),
            target: eb.ref('excluded.target'),
            last_seen_at: eb.ref('excluded.last_seen_at'),
          })),
        )
        .execute();
    } catch (error) {
      throw toStoreError(error, 'upsert upstreams');
    }
  }

  async recordAdminAction(input: AdminActionInput, at: number = Date.now()): Promise<string> {
    const id = uuidv7();
    try {
      await this.db
        .insertInto('portcullis_admin_audit')
        .values({
          id,
          occurred_at: new Date(at).toISOString(),
          actor: input.actor,
          action: input.action,
          target: input.target ?? null,
          details: JSON.stringify(toStorableJson(input.details ?? {})),
        })
        .execute();
      return id;
    } catch (error) {
      throw toStoreError(error, 'admin audit');
    }
  }

  // ---------------------------------------------------------------- batching

  #enqueue(op: StoreOp): Promise<void> {
    this.#queue.push(op);
    if (this.#queue.length >= this.#maxBatch) {
      this.#startFlush();
    } else if (this.#timer === undefined && this.#flushing === undefined) {
      this.#timer = setTimeout(() => {
        this.#timer = undefined;
        this.#startFlush();
      }, this.#intervalMs);
      this.#timer.unref?.();
    }
    if (this.#queue.length < this.#maxQueue) return Promise.resolve();
    return new Promise<void>((resolveSpace) => this.#spaceWaiters.push(resolveSpace));
  }

  #startFlush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#flushing === undefined) {
      this.#flushing = this.#drain().finally(() => {
        this.#flushing = undefined;
        if (this.#queue.length > 0) this.#startFlush();
      });
    }
    return this.#flushing;
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const batch = this.#queue.splice(0, this.#maxBatch);
      this.#releaseWaiters();
      await this.#writeBatch(batch);
    }
  }

  #releaseWaiters(): void {
    if (this.#queue.length >= this.#maxQueue) return;
    const waiters = this.#spaceWaiters;
    this.#spaceWaiters = [];
    for (const wake of waiters) wake();
  }

  async #writeBatch(batch: StoreOp[]): Promise<void> {
    if (this.#health === 'down') {
      this.#spoolOrReport(batch);
      return;
    }
    try {
      await this.#apply(batch, false);
    } catch (error) {
      const storeError = toStoreError(error, 'batch write');
      if (storeError.code === 'store.unavailable') {
        this.#markDown(storeError);
        this.#spoolOrReport(batch);
      } else {
        await this.#applyOneByOne(batch, false);
      }
    }
  }

  #spoolOrReport(batch: StoreOp[]): void {
    try {
      this.spool.append(batch);
    } catch (error) {
      this.#onError(new PortcullisError('store.spool_failed', 'cannot write the spool: events lost', { cause: error }));
    }
  }

  /** After a batch failed on bad data: write what can be written, set the rest aside in the rejected file. */
  async #applyOneByOne(batch: StoreOp[], replay: boolean): Promise<void> {
    const rejected: StoreOp[] = [];
    for (const [index, op] of batch.entries()) {
      try {
        await this.#apply([op], replay);
      } catch (error) {
        const storeError = toStoreError(error, 'write');
        if (storeError.code === 'store.unavailable') {
          this.#markDown(storeError);
          this.#spoolOrReport(batch.slice(index));
          break;
        }
        this.#onError(storeError);
        rejected.push(op);
      }
    }
    if (rejected.length > 0) {
      try {
        this.spool.reject(this.instance, rejected);
      } catch (error) {
        this.#onError(toStoreError(error, 'reject file'));
      }
    }
  }

  /** Writes a batch in one transaction: inserts first (sessions, tool calls, events), then updates. */
  async #apply(batch: readonly StoreOp[], replay: boolean): Promise<void> {
    const sessions: SessionRow[] = [];
    const toolCalls: ToolCallRow[] = [];
    const events: EventRow[] = [];
    const updates: StoreOp[] = [];
    for (const op of batch) {
      if (op.op === 'session') sessions.push(op.row);
      else if (op.op === 'toolCall') toolCalls.push(op.row);
      else if (op.op === 'event') events.push(op.row);
      else updates.push(op);
    }
    await this.db.transaction().execute(async (tx) => {
      for (const rows of chunk(sessions)) {
        await tx
          .insertInto('portcullis_sessions')
          .values(rows)
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
      }
      for (const rows of chunk(toolCalls)) {
        await tx
          .insertInto('portcullis_tool_calls')
          .values(rows)
          .onConflict((oc) => oc.column('id').doNothing())
          .execute();
      }
      if (events.length > 0) {
        // One statement per batch whatever its size: 13 array parameters unnested server-side
        // (far cheaper to build and parse than 13 parameters per row). A replayed event may already
        // be there (its batch committed just before the connection dropped); outside replay a
        // duplicate (session, seq) is an error: two writers on one session.
        const conflict = replay ? sql` on conflict (session_id, seq) do nothing` : sql``;
        const col = <T>(pick: (row: EventRow) => T): T[] => events.map(pick);
        await sql`insert into portcullis_events
          (session_id, seq, occurred_at, direction, kind, method, rpc_id, upstream, payload, size_bytes, latency_ms, prev_hash, hash)
          select * from unnest(
            ${col((r) => r.session_id)}::text[], ${col((r) => r.seq)}::integer[],
            ${col((r) => toIso(r.occurred_at))}::timestamptz[], ${col((r) => r.direction)}::text[],
            ${col((r) => r.kind)}::text[], ${col((r) => r.method ?? null)}::text[],
            ${col((r) => r.rpc_id ?? null)}::text[], ${col((r) => r.upstream ?? null)}::text[],
            ${col((r) => r.payload)}::jsonb[], ${col((r) => r.size_bytes)}::integer[],
            ${col((r) => r.latency_ms ?? null)}::double precision[], ${col((r) => r.prev_hash)}::text[],
            ${col((r) => r.hash)}::text[]
          )${conflict}`.execute(tx);
      }
      for (const op of updates) {
        if (op.op === 'toolCallOutcome') {
          await tx
            .updateTable('portcullis_tool_calls')
            .set({
              completed_at: op.completedAt,
              outcome: op.outcome,
              result: op.result,
              is_error: op.isError,
              error_code: op.errorCode,
              error_message: op.errorMessage,
              duration_ms: op.durationMs,
              redaction: op.redaction,
            })
            .where('id', '=', op.id)
            .execute();
        } else if (op.op === 'sessionEnd') {
          await tx
            .updateTable('portcullis_sessions')
            .set({ ended_at: op.endedAt, end_reason: op.reason, event_count: op.eventCount, head_hash: op.headHash })
            .where('id', '=', op.id)
            .execute();
        }
      }
    });
  }

  /** Waits until everything queued so far is committed (or spooled, if the store is down). */
  async flush(): Promise<void> {
    while (this.#queue.length > 0 || this.#flushing !== undefined) {
      await this.#startFlush();
    }
  }

  // ---------------------------------------------------------------- failure and recovery

  #markDown(error: PortcullisError): void {
    if (this.#health === 'down') return;
    this.#health = 'down';
    this.#onError(error);
    this.#scheduleProbe();
  }

  #scheduleProbe(): void {
    if (this.#closed || this.#probe !== undefined) return;
    this.#probe = setTimeout(() => {
      this.#probe = undefined;
      void this.#tryRecover();
    }, this.#probeIntervalMs);
    this.#probe.unref?.();
  }

  async #tryRecover(): Promise<void> {
    if (this.#recovering !== undefined) return this.#recovering;
    this.#recovering = (async () => {
      try {
        await sql`select 1`.execute(this.db);
        await this.#replayOwn();
      } catch (error) {
        const storeError = toStoreError(error, 'recovery');
        if (storeError.code !== 'store.unavailable') this.#onError(storeError);
        this.#scheduleProbe();
      }
    })().finally(() => {
      this.#recovering = undefined;
    });
    return this.#recovering;
  }

  /**
   * Replays this process's spool until it is empty. New operations keep going to the spool while
   * this runs (the store stays `down`), so the replay order is the write order; the switch back to
   * `up` happens synchronously once a replay leaves nothing behind.
   */
  async #replayOwn(): Promise<void> {
    await this.flush();
    for (;;) {
      const file = this.spool.claimOwn();
      if (file === undefined) {
        this.#health = 'up';
        return;
      }
      await this.#replayFile(file);
    }
  }

  async #replayFile(file: string): Promise<void> {
    const ops = readSpoolFile(file) as StoreOp[];
    for (let i = 0; i < ops.length; i += this.#maxBatch) {
      const batch = ops.slice(i, i + this.#maxBatch);
      try {
        await this.#apply(batch, true);
      } catch (error) {
        const storeError = toStoreError(error, 'spool replay');
        if (storeError.code === 'store.unavailable') {
          // Put the rest back at the head of the spool order and stay down.
          this.spool.append(ops.slice(i));
          removeSpoolFile(file);
          throw storeError;
        }
        await this.#applyOneByOne(batch, true);
      }
    }
    removeSpoolFile(file);
  }

  /** At open: replays spool files left by earlier runs (a crash, or a shutdown while the store was down). */
  async replayLeftovers(): Promise<number> {
    const files = this.spool.claimAll();
    let replayed = 0;
    for (const file of files) {
      replayed += readSpoolFile(file).length;
      await this.#replayFile(file);
    }
    return replayed;
  }

  /** Checks the store now; if it answers, replays the spool and marks it up. */
  async recover(): Promise<StoreHealth> {
    if (this.#health === 'up') return 'up';
    if (this.#probe !== undefined) {
      clearTimeout(this.#probe);
      this.#probe = undefined;
    }
    await this.#tryRecover();
    return this.#health;
  }

  /** Row counts of the log tables (for `portcullis db status`). */
  async counts(): Promise<{ sessions: number; events: number; toolCalls: number }> {
    try {
      const { rows } = await sql<{ sessions: string; events: string; tool_calls: string }>`select
        (select count(*) from portcullis_sessions) as sessions,
        (select count(*) from portcullis_events) as events,
        (select count(*) from portcullis_tool_calls) as tool_calls`.execute(this.db);
      const row = rows[0];
      return {
        sessions: Number(row?.sessions ?? 0),
        events: Number(row?.events ?? 0),
        toolCalls: Number(row?.tool_calls ?? 0),
      };
    } catch (error) {
      throw toStoreError(error, 'counts');
    }
  }

  // ---------------------------------------------------------------- verification, retention

  /** Recomputes the hash chains (of one session or all) and names each broken session's first broken link. */
  async verifyChains(options: { sessionId?: string } = {}): Promise<VerifyReport> {
    await this.flush();
    const broken: BrokenLink[] = [];
    let eventsChecked = 0;
    let sessionsChecked = 0;
    try {
      let sessions: Array<{ id: string; event_count: number | null; head_hash: string | null }>;
      if (options.sessionId !== undefined) {
        sessions = await this.db
          .selectFrom('portcullis_sessions')
          .select(['id', 'event_count', 'head_hash'])
          .where('id', '=', options.sessionId)
          .execute();
        if (sessions.length === 0) sessions = [{ id: options.sessionId, event_count: null, head_hash: null }];
      } else {
        sessions = await this.db
          .selectFrom('portcullis_sessions')
          .select(['id', 'event_count', 'head_hash'])
          .orderBy('started_at')
          .orderBy('id')
          .execute();
      }
      for (const session of sessions) {
        sessionsChecked += 1;
        const result = await this.#verifySession(session.id, session.event_count, session.head_hash);
        eventsChecked += result.checked;
        if (result.broken !== undefined) broken.push(result.broken);
      }
    } catch (error) {
      throw toStoreError(error, 'verify');
    }
    return { ok: broken.length === 0, sessionsChecked, eventsChecked, broken };
  }

  async #verifySession(
    sessionId: string,
    eventCount: number | null,
    headHash: string | null,
  ): Promise<{ checked: number; broken?: BrokenLink }> {
    let expectedSeq = 1;
    let prevHash = GENESIS_HASH;
    const page = 1_000;
    for (;;) {
      const rows = await this.db
        .selectFrom('portcullis_events')
        .selectAll()
        .where('session_id', '=', sessionId)
        .where('seq', '>=', expectedSeq)
        .orderBy('seq')
        .limit(page)
        .execute();
      for (const row of rows) {
        const at = (reason: string) => ({ checked: expectedSeq - 1, broken: { sessionId, seq: row.seq, reason } });
        if (row.seq !== expectedSeq) {
          return { checked: expectedSeq - 1, broken: { sessionId, seq: expectedSeq, reason: 'event missing' } };
        }
        if (row.prev_hash !== prevHash) return at('prev_hash does not match the previous event');
        const content: HashedEventContent = {
          sessionId: row.session_id,
          seq: row.seq,
          occurredAt: toDate(row.occurred_at).toISOString(),
          direction: row.direction,
          kind: row.kind,
          method: row.method,
          rpcId: row.rpc_id,
          upstream: row.upstream,
          payload: row.payload,
          sizeBytes: row.size_bytes,
          latencyMs: row.latency_ms,
        };
        if (chainHash(prevHash, content) !== row.hash) return at('content does not match its hash');
        prevHash = row.hash;
        expectedSeq += 1;
      }
      if (rows.length < page) break;
    }
    const checked = expectedSeq - 1;
    if (eventCount !== null && checked < eventCount) {
      return {
        checked,
        broken: { sessionId, seq: expectedSeq, reason: `event missing (session ended at ${eventCount})` },
      };
    }
    if (eventCount !== null && checked > eventCount) {
      return {
        checked,
        broken: { sessionId, seq: eventCount + 1, reason: 'event after the recorded end of the session' },
      };
    }
    if (headHash !== null && headHash !== prevHash) {
      return { checked, broken: { sessionId, seq: checked, reason: 'last event does not match the recorded head' } };
    }
    return { checked };
  }

  /**
   * Counts what `pruneSessions` would delete now: whole sessions that ended before `olderThan`, or,
   * never ended, whose last recorded event (else start) is before it. Sessions this process has open
   * are never counted.
   */
  async planPrune(options: { olderThan: Date | string }): Promise<PrunePlan> {
    const cutoff = pruneCutoff(options.olderThan);
    await this.flush();
    try {
      const open = [...this.#chains.keys()];
      const [counts] = await sql<{ sessions: string; events: string; tool_calls: string }>`
        with doomed as (
          select s.id from portcullis_sessions s
          where ${prunable(cutoff)}
          ${open.length > 0 ? sql`and s.id not in (${sql.join(open)})` : sql``}
        )
        select
          (select count(*) from doomed) as sessions,
          (select count(*) from portcullis_events e where e.session_id in (select id from doomed)) as events,
          (select count(*) from portcullis_tool_calls t where t.session_id in (select id from doomed)) as tool_calls
      `
        .execute(this.db)
        .then((result) => result.rows);
      return {
        cutoff,
        sessions: Number(counts?.sessions ?? 0),
        events: Number(counts?.events ?? 0),
        toolCalls: Number(counts?.tool_calls ?? 0),
      };
    } catch (error) {
      throw toStoreError(error, 'prune');
    }
  }

  /**
   * Deletes whole sessions (their events, tool calls and row) that `planPrune` counts, `batchSize`
   * sessions per transaction, so every remaining session's chain still verifies. Each batch evaluates
   * the cutoff afresh (a session that received an event since `planPrune` is kept) and skips rows
   * another pruner has locked, so gateways sharing a store and the CLI may prune at once.
   */
  async pruneSessions(options: PruneOptions): Promise<PruneReport> {
    const cutoff = pruneCutoff(options.olderThan);
    const batchSize = options.batchSize ?? PRUNE_BATCH;
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new PortcullisError('config.invalid', `prune batch size must be a positive integer, not ${batchSize}`);
    }
    await this.flush();
    let deleted = { sessions: 0, events: 0, toolCalls: 0 };
    let after = '';
    try {
      for (;;) {
        if (options.signal?.aborted === true) return deleted;
        const { scanned, last, report } = await this.db.transaction().execute(async (tx) => {
          const rows = await sql<{ id: string }>`
            select s.id from portcullis_sessions s
            where s.id > ${after} and ${prunable(cutoff)}
            order by s.id
            limit ${batchSize}
            for update skip locked
          `.execute(tx);
          const ids = rows.rows.map((row) => row.id).filter((id) => !this.#chains.has(id));
          const batch = { sessions: 0, events: 0, toolCalls: 0 };
          if (ids.length > 0) {
            const e = await tx.deleteFrom('portcullis_events').where('session_id', 'in', ids).executeTakeFirst();
            const t = await tx.deleteFrom('portcullis_tool_calls').where('session_id', 'in', ids).executeTakeFirst();
            const s = await tx.deleteFrom('portcullis_sessions').where('id', 'in', ids).executeTakeFirst();
            batch.events = Number(e.numDeletedRows);
            batch.toolCalls = Number(t.numDeletedRows);
            batch.sessions = Number(s.numDeletedRows);
          }
          return { scanned: rows.rows.length, last: rows.rows.at(-1)?.id, report: batch };
        });
        deleted = {
          sessions: deleted.sessions + report.sessions,
          events: deleted.events + report.events,
          toolCalls: deleted.toolCalls + report.toolCalls,
        };
        if (scanned > 0) options.onProgress?.(deleted);
        if (scanned < batchSize || last === undefined) return deleted;
        after = last;
      }
    } catch (error) {
      throw toStoreError(error, 'prune');
    }
  }

  // ---------------------------------------------------------------- shutdown

  /** Flushes everything (to the store, or to the spool if it is down) and closes the connection. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#writeAheadInFlight;
    await this.flush().catch(() => {});
    if (this.#health === 'down') {
      // One last chance to replay before leaving the rest for the next start.
      await this.recover().catch(() => {});
    }
    this.#closed = true;
    if (this.#probe !== undefined) clearTimeout(this.#probe);
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#recovering?.catch(() => {});
    this.spool.close();
    await this.db.destroy().catch(() => {});
    await this.#closeDriver().catch(() => {});
  }

  #assertOpen(): void {
    if (this.#closed) throw new PortcullisError('store.closed', 'the session log store is closed');
  }
}

function outcomeColumns(completion: ToolCallCompletion): {
  completedAt: string;
  outcome: string;
  result: string | null;
  isError: boolean | null;
  errorCode: number | null;
  errorMessage: string | null;
  durationMs: number;
  redaction: string | null;
} {
  const { outcome } = completion;
  const base = {
    completedAt: new Date(completion.at ?? Date.now()).toISOString(),
    durationMs: completion.durationMs,
    redaction: completion.redaction === undefined ? null : JSON.stringify(toStorableJson(completion.redaction)),
  };
  if (outcome.kind === 'result') {
    return {
      ...base,
      outcome: outcome.isError ? 'tool_error' : 'result',
      result: JSON.stringify(toStorableJson(outcome.result)),
      isError: outcome.isError,
      errorCode: null,
      errorMessage: null,
    };
  }
  return {
    ...base,
    outcome: 'rpc_error',
    result: null,
    isError: null,
    errorCode: outcome.code,
    errorMessage: outcome.message,
  };
}

function chunk<T>(rows: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += MAX_ROWS_PER_INSERT) out.push(rows.slice(i, i + MAX_ROWS_PER_INSERT));
  return out;
}

function toIso(value: Date | string): string {
  return value instanceof Date ? value.toISOString() : value;
}

function toDate(value: Date | string): Date {
  return value instanceof Date ? value : new Date(value);
}

/** Drops user info, query and fragment from a URL: they are where credentials hide. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = '';
    parsed.password = '';
    parsed.search = '';
    parsed.hash = '';
    return parsed.toString();
  } catch {
    return '(unparseable url)';
  }
}

const DURATION_UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const PRUNE_BATCH = 100;

function pruneCutoff(olderThan: Date | string): Date {
  return typeof olderThan === 'string' ? new Date(Date.now() - parseDuration(olderThan)) : olderThan;
}

/**
 * A session (aliased `s`) is past `cutoff` when it ended before it, or, never ended, when its last
 * recorded event (else its start) is: an unended session with recent events may still be live.
 */
function prunable(cutoff: Date): RawBuilder<boolean> {
  return sql<boolean>`coalesce(
    s.ended_at,
    greatest(s.started_at, (select max(e.occurred_at) from portcullis_events e where e.session_id = s.id))
  ) < ${cutoff.toISOString()}::timestamptz`;
}

/** `90d`, `12h`, `30m`, `1w`, `500ms` → milliseconds. */
export function parseDuration(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*$/.exec(text);
  const unit = match?.[2] === undefined ? undefined : DURATION_UNITS[match[2]];
  if (match?.[1] === undefined || unit === undefined) {
    throw new PortcullisError('config.invalid', `invalid duration "${text}" (expected e.g. 90d, 12h, 30m)`);
  }
  return Number(match[1]) * unit;
}

/** The request half of a tool-call row: what is known before the call is forwarded (or refused). */
function toolCallRequestRow(id: string, input: ToolCallInput, forwarded: boolean): ToolCallRow & { id: string } {
  return {
    id,
    session_id: input.sessionId,
    rpc_id: input.rpcId === undefined ? null : JSON.stringify(input.rpcId),
    request_seq: input.requestSeq ?? null,
    identity_subject: input.identity.subject,
    identity_groups: JSON.stringify([...input.identity.groups]),
    upstream: input.upstream ?? null,
    tool: input.tool,
    namespaced_tool: input.namespacedTool,
    arguments: JSON.stringify(toStorableJson(input.arguments ?? {})),
    decision: input.decision,
    decision_rule: input.decisionRule ?? null,
    approval_ref: input.approvalRef ?? null,
    policy_version: input.policyVersion ?? null,
    forwarded,
    requested_at: new Date(input.at ?? Date.now()).toISOString(),
  };
}
