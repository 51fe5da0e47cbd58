import { dirname, isAbsolute, resolve } from 'node:path';
import { type Config, ConfigError, loadConfigFile, type UpstreamSpec } from '@portcullis/config';
import { describeError, PortcullisError, type Stage } from '@portcullis/core';
import type { SessionObserver } from '@portcullis/gateway';
import {
  createRecordStage,
  createSessionRecorder,
  openStore,
  parseDuration,
  redactUrl,
  type Store,
  type StoreOptions,
  type UpstreamInput,
} from '@portcullis/store';
import { InvalidArgumentError } from 'commander';
import type { Logger } from 'pino';

/**
 * Paths in the `database` and `audit` sections are relative to the configuration file's directory
 * (so two configurations never share an embedded database by accident).
 */
export function resolveConfigPaths(config: Config, configFile: string): void {
  const base = dirname(resolve(configFile));
  const at = (path: string) => (path.startsWith('memory://') || isAbsolute(path) ? path : resolve(base, path));
  config.database.dataDir = at(config.database.dataDir);
  if (config.audit.spoolDir !== undefined) config.audit.spoolDir = at(config.audit.spoolDir);
  if (config.policy?.file !== undefined) config.policy.file = at(config.policy.file);
}

/**
 * Which database the session log uses: `database.url` in the configuration, else the `DATABASE_URL`
 * environment variable, else the embedded PGlite database in `database.dataDir`.
 */
export function storeOptionsFor(config: Config, env: NodeJS.ProcessEnv = process.env): StoreOptions {
  const fromEnv = env.DATABASE_URL !== undefined && env.DATABASE_URL !== '' ? env.DATABASE_URL : undefined;
  const url = config.database.url ?? fromEnv;
  return {
    ...(url !== undefined ? { url } : { dataDir: config.database.dataDir }),
    onStoreFailure: config.audit.onStoreFailure,
    spoolDir: config.audit.spoolDir,
    batch: config.audit.batch,
  };
}

/** Where the store lives, for messages (a Postgres URL without credentials, or the data directory). */
export function describeStore(options: StoreOptions): string {
  return options.url !== undefined ? `postgres ${redactUrl(options.url)}` : `embedded ${options.dataDir ?? ''}`;
}

export interface SessionLog {
  readonly store: Store;
  /** The `record` pipeline stage. */
  readonly stage: Stage;
  /** Session ends and outbound notifications, for `GatewayOptions.observer`. */
  readonly observer: SessionObserver;
  /** Records the configured upstreams (never their credentials). */
  recordUpstreams(specs: readonly UpstreamSpec[]): Promise<void>;
  /** Stops retention, waits for pending session bookkeeping, flushes and closes the store. */
  close(): Promise<void>;
}

/** How often retention runs at most (it also runs once shortly after start). */
const PRUNE_INTERVAL_MS = 60 * 60 * 1_000;
const FIRST_PRUNE_DELAY_MS = 5_000;

/** Opens the store (migrations run at open), and builds the record stage and session observer over it. */
export async function openSessionLog(config: Config, logger: Logger): Promise<SessionLog> {
  const options = storeOptionsFor(config);
  const log = logger.child({ component: 'session-log' });
  const onError = (error: PortcullisError) =>
    log.warn({ code: error.code, err: describeError(error.cause ?? error) }, error.message);
  const store = await openStore({ ...options, onError });
  log.info({ store: describeStore(options), instance: store.instance }, 'session log open');

  const sessions = createSessionRecorder(store);
  const pending = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>) => {
    const settled = work
      .catch((error: unknown) => onError(asPortcullisError(error)))
      .finally(() => {
        pending.delete(settled);
      });
    pending.add(settled);
  };
  const observer: SessionObserver = {
    sessionClosed: (sessionId, reason) => track(sessions.end(sessionId, reason)),
    notified: (sessionId, method, params) => track(sessions.notification(sessionId, method, params)),
    sessionOpened: (session, identity, handshake) => track(sessions.opened(session, identity, handshake)),
    received: (sessionId, method, params) => track(sessions.received(sessionId, method, params)),
    requested: (sessionId, method, params) => track(sessions.requested(sessionId, method, params)),
    answered: (sessionId, method, outcome) => track(sessions.answered(sessionId, method, outcome)),
  };
  const stage = createRecordStage(store, { sessions, onError });

  let pruneTimer: NodeJS.Timeout | undefined;
  let pruning: Promise<void> | undefined;
  const retention = config.audit.retention;
  if (retention !== undefined) {
    const every = Math.max(1_000, Math.min(PRUNE_INTERVAL_MS, parseDuration(retention) / 10));
    const prune = () => {
      pruning ??= store
        .pruneSessions({ olderThan: retention })
        .then((report) => {
          if (report.sessions > 0) log.info({ ...report, retention }, 'session log pruned');
        })
        .catch((error: unknown) => onError(asPortcullisError(error)))
        .finally(() => {
          pruning = undefined;
        });
    };
    const schedule = (delay: number) => {
      pruneTimer = setTimeout(() => {
        prune();
        schedule(every);
      }, delay);
      pruneTimer.unref();
    };
    schedule(Math.min(FIRST_PRUNE_DELAY_MS, every));
  }

  return {
    store,
    stage,
    observer,
    recordUpstreams: async (specs) => {
      const rows: UpstreamInput[] = specs.map((spec) =>
        spec.transport === 'stdio'
          ? { name: spec.name, transport: spec.transport, command: spec.command }
          : { name: spec.name, transport: spec.transport, url: spec.url },
      );
      await store.upsertUpstreams(rows);
    },
    close: async () => {
      if (pruneTimer !== undefined) clearTimeout(pruneTimer);
      await pruning;
      while (pending.size > 0) await Promise.allSettled([...pending]);
      await store.close();
    },
  };
}

function asPortcullisError(error: unknown): PortcullisError {
  return error instanceof PortcullisError
    ? error
    : new PortcullisError('store.failed', 'session log write failed', { cause: error });
}

/** `--output` of the inspection commands. */
export type OutputFormat = 'text' | 'json';

export function parseOutputFormat(value: string): OutputFormat {
  if (value === 'text' || value === 'json') return value;
  throw new InvalidArgumentError('an output format is "text" or "json"');
}

/** Exit codes of the store commands, beside 0 (ok), 1 (runtime failure) and 2 (bad usage or configuration). */
export const CheckFailed = 3;

/** Loads a configuration file for a command: exit 2 naming each problem, paths resolved against the file. */
export async function loadConfigForCommand(file: string): Promise<Config> {
  try {
    const config = await loadConfigFile(file);
    resolveConfigPaths(config, file);
    return config;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`portcullis: invalid configuration\n${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

/**
 * Opens the configured store for an administrative command: no migrations unless asked, no spool
 * replay (that is the gateway's job). Exit 1 naming the store when it cannot be opened.
 */
export async function openStoreForCommand(config: Config, options: { migrate: boolean }): Promise<Store> {
  const storeOptions = storeOptionsFor(config);
  try {
    return await openStore({ ...storeOptions, migrate: options.migrate, replaySpool: false });
  } catch (error) {
    process.stderr.write(
      `portcullis: cannot open the session log (${describeStore(storeOptions)}): ${describeError(error)}\n`,
    );
    process.exit(1);
  }
}

/** A session log being opened: the stage and observer the gateway is built with, and the open itself. */
export interface PendingSessionLog {
  /** Waits for the open on its first use (requests only arrive once the front listens, after `ready`). */
  readonly stage: Stage;
  readonly observer: SessionObserver;
  /** The open session log; rejects when the store cannot be opened. */
  readonly ready: Promise<SessionLog>;
}

/**
 * Starts opening the session log without waiting, so the embedded database's start-up (CPU-bound)
 * overlaps with the upstreams' (child processes, network). Callers await `ready` before serving.
 */
export function startSessionLog(config: Config, logger: Logger): PendingSessionLog {
  let opened: SessionLog | undefined;
  const ready = openSessionLog(config, logger).then((log) => {
    opened = log;
    return log;
  });
  // Observed by the caller; this only keeps an early failure from being reported as unhandled.
  ready.catch(() => undefined);
  return {
    ready,
    stage: {
      name: 'record',
      handle: async (ctx, next) => (opened ?? (await ready)).stage.handle(ctx, next),
    },
    observer: deferredObserver(ready, () => opened),
  };
}

/**
 * An observer that forwards to the session log's own once it is open, and queues each call behind
 * its opening until then (calls keep their order: each waits on the same promise).
 */
function deferredObserver(ready: Promise<SessionLog>, current: () => SessionLog | undefined): SessionObserver {
  const forward = (call: (observer: SessionObserver) => void): void => {
    const log = current();
    if (log) call(log.observer);
    else
      void ready.then(
        (opened) => call(opened.observer),
        () => undefined,
      );
  };
  return {
    sessionClosed: (sessionId, reason) => forward((o) => o.sessionClosed?.(sessionId, reason)),
    notified: (sessionId, method, params) => forward((o) => o.notified?.(sessionId, method, params)),
    sessionOpened: (session, identity, handshake) => forward((o) => o.sessionOpened?.(session, identity, handshake)),
    received: (sessionId, method, params) => forward((o) => o.received?.(sessionId, method, params)),
    requested: (sessionId, method, params) => forward((o) => o.requested?.(sessionId, method, params)),
    answered: (sessionId, method, outcome) => forward((o) => o.answered?.(sessionId, method, outcome)),
  };
}
