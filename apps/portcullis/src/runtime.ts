import type { Config } from '@portcullis/config';
import type { Stage } from '@portcullis/core';
import type { AdminApi } from '@portcullis/front';
import { Gateway, providerFromPool } from '@portcullis/gateway';
import { StaticUpstreamRegistry, UpstreamPool } from '@portcullis/upstream';
import type { Logger } from 'pino';
import { createAdminApi } from './admin-api.js';
import { startApprovals } from './approvals-runtime.js';
import { type PolicyRuntime, startPolicyRuntimeOrExit } from './policy-runtime.js';
import { type PendingSessionLog, type SessionLog, startSessionLog, storeOptionsFor } from './session-log.js';
import { StorePolicySource } from './store-policy-source.js';
import { resolvedConfigSpecs, startUpstreamAdmin, type UpstreamAdmin } from './upstream-admin.js';

export interface GatewayRuntime {
  readonly gateway: Gateway;
  readonly pool: UpstreamPool;
  /** The policy document in force (authorize, list filtering, redaction); reloaded when its file changes. */
  readonly policy: PolicyRuntime;
  /** The session log (store, record stage, lifecycle observer). */
  readonly sessionLog: SessionLog;
  /** The admin API (`/admin/v1/…` on the HTTP front) over the session-log store. */
  readonly admin: AdminApi;
  close(): Promise<void>;
}

/** How long start-up waits for upstreams before serving anyway (late ones join when they connect). */
const STARTUP_WAIT_MS = 15_000;

/** Connects the upstreams of `config` and builds the gateway over them. */
export async function startGatewayRuntime(config: Config, logger: Logger): Promise<GatewayRuntime> {
  // A bad policy file stops the start (exit 2 naming file, place and reason) before anything connects.
  let built: Gateway | undefined;
  // `policy.source: store` reads the applied versions from the session-log store: open it first.
  const earlyLog = config.policy?.source === 'store' ? startSessionLog(config, logger) : undefined;
  const policy = await startPolicyRuntimeOrExit(
    config,
    logger,
    () => built?.catalog,
    earlyLog === undefined ? undefined : storePolicySource(earlyLog, logger),
  );
  // The session log opens while the upstreams connect; nothing is served before it is open (without
  // it no tool call may be forwarded, audit.onStoreFailure: closed).
  const pendingLog = earlyLog ?? startSessionLog(config, logger);
  // The hold stage (approval records) needs the open store; like the record stage it waits for it.
  const pendingApprovals = pendingLog.ready.then((log) =>
    startApprovals(config, log.store, storeOptionsFor(config).url, logger),
  );
  pendingApprovals.catch(() => undefined);
  const holdStage: Stage = {
    name: 'hold',
    handle: async (ctx, next) => (await pendingApprovals).stage.handle(ctx, next),
  };
  const registry = new StaticUpstreamRegistry(resolvedConfigSpecs(config, logger));
  const pool = new UpstreamPool(registry, {
    logger: logger.child({ component: 'upstream' }),
    clientInfo: { name: config.gateway.name, version: '0.1.0' },
  });
  pool.start();
  const gateway = new Gateway({
    config,
    provider: providerFromPool(pool),
    logger: logger.child({ component: 'gateway' }),
    stages: [pendingLog.stage, ...policy.stages, holdStage],
    listFilter: policy.listFilter,
    outbound: policy.outbound,
    observer: pendingLog.observer,
  });
  built = gateway;
  let sessionLog: SessionLog;
  try {
    [sessionLog] = await Promise.all([pendingLog.ready, waitForUpstreams(gateway, logger)]);
  } catch (error) {
    policy.close();
    await gateway.close();
    await pool.close();
    throw error;
  }
  // Upstreams managed at run time (portcullis upstream …, apply): the store overrides the config file.
  const upstreamAdmin: UpstreamAdmin = startUpstreamAdmin({
    config,
    registry,
    pool,
    gateway,
    store: sessionLog.store,
    logger: logger.child({ component: 'upstream-admin' }),
  });
  await upstreamAdmin.sync().catch((error: unknown) => {
    logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'managed upstreams not read');
  });
  await sessionLog.recordUpstreams(registry.list()).catch((error: unknown) => {
    logger.warn({ err: error instanceof Error ? error.message : String(error) }, 'upstreams not recorded');
  });
  return {
    gateway,
    pool,
    policy,
    sessionLog,
    admin: createAdminApi({ store: sessionLog.store, config, upstreams: upstreamAdmin }),
    close: async () => {
      policy.close();
      await upstreamAdmin.close();
      await gateway.close();
      await pool.close();
      await (await pendingApprovals.catch(() => undefined))?.close();
      // Last: session ends recorded by gateway.close() are flushed with everything else.
      await sessionLog.close();
    },
  };
}

/** The applied policy versions in the session-log store (`policy.source: store`), polled every second. */
function storePolicySource(log: PendingSessionLog, logger: Logger): StorePolicySource {
  const policyLog = logger.child({ component: 'policy' });
  return new StorePolicySource(() => log.ready.then((opened) => opened.store), {
    onError: (error) =>
      policyLog.warn({ err: error instanceof Error ? error.message : String(error) }, 'cannot poll the policy store'),
  });
}

async function waitForUpstreams(gateway: Gateway, logger: Logger): Promise<void> {
  const specs = gateway.provider.specs();
  const attempts = specs.map(async (spec) => {
    const connection = gateway.provider.primary(spec.name);
    if (!connection) return;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`not connected after ${STARTUP_WAIT_MS} ms`)), STARTUP_WAIT_MS);
    });
    try {
      await Promise.race([connection.ready(), timeout]);
    } catch (error) {
      logger.warn(
        { upstream: spec.name, err: error instanceof Error ? error.message : String(error) },
        'upstream not connected at start; it keeps retrying',
      );
    } finally {
      clearTimeout(timer);
    }
  });
  await Promise.all(attempts);
}
