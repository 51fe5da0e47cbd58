import { type Config, resolveSecret } from '@portcullis/config';
import { describeError, JsonRpcError, RpcCode, type Stage } from '@portcullis/core';
import type { Catalog, CatalogItem, ListFilter, ListKind, OutboundFilter } from '@portcullis/gateway';
import {
  ActivePolicy,
  type CompiledPolicy,
  createAuthorizeStage,
  FilePolicySource,
  isHidden,
  type ListedItem,
  PolicyError,
  type PolicySource,
  type TargetKind,
} from '@portcullis/policy';
import { createOutboundRedaction, createRedactStage, type JsonSchema, Redactor } from '@portcullis/redact';
import type { Logger } from 'pino';

/** What the policy document contributes to the gateway: stages, list filtering, outbound redaction. */
export interface PolicyRuntime {
  /** `identify`, and with a policy `authorize` and `transform` (redaction). */
  readonly stages: readonly Stage[];
  readonly listFilter: ListFilter | undefined;
  readonly outbound: OutboundFilter | undefined;
  /** The policy in force; `undefined` without `policy:` in the configuration. */
  readonly active: ActivePolicy | undefined;
  close(): void;
}

/** Exit code for a bad policy file or redaction setting (as for a bad configuration). */
const BAD_INPUT_EXIT = 2;

/**
 * `startPolicyRuntime`, exiting the program with code 2 and the file, place and reason on stderr
 * when the policy (or `redaction.hashKey`) cannot be used.
 */
export async function startPolicyRuntimeOrExit(
  config: Config,
  logger: Logger,
  catalog: () => Catalog | undefined,
  source: PolicySource | undefined = policySourceOf(config),
): Promise<PolicyRuntime> {
  try {
    return await startPolicyRuntime(config, logger, catalog, source);
  } catch (error) {
    if (error instanceof PolicyError) {
      process.stderr.write(`portcullis: invalid policy\n${error.message}\n`);
      logger.flush();
      process.exit(BAD_INPUT_EXIT);
    }
    if (error instanceof RedactionSettingError) {
      process.stderr.write(`portcullis: invalid configuration\n${error.message}\n`);
      logger.flush();
      process.exit(BAD_INPUT_EXIT);
    }
    throw error;
  }
}

/** `redaction.hashKey` names an unset variable or is too short. */
class RedactionSettingError extends Error {}

const LIST_TARGET_KIND: Readonly<Record<ListKind, TargetKind>> = {
  tools: 'tool',
  prompts: 'prompt',
  resources: 'resource',
  resourceTemplates: 'resource',
};

/**
 * The policy file the configuration names (`policy.source: file`). `policy.source: store` needs the
 * open store: the runtime builds a `StorePolicySource` for it.
 */
export function policySourceOf(config: Config): PolicySource | undefined {
  return config.policy?.source === 'file' && config.policy.file !== undefined
    ? new FilePolicySource(config.policy.file)
    : undefined;
}

/**
 * Identity for HTTP agents as the configuration allows it: an API key's identity (the front's
 * authenticator), or anonymous only with `auth.anonymous: true`. The HTTP front already refuses
 * requests with 401; this stage refuses again should an anonymous one get through (fail closed).
 * stdio agents carry the identity the front was given (`identity:` in the configuration, or
 * `--as/--groups`).
 */
function identifyStage(config: Config): Stage {
  return {
    name: 'identify',
    handle: (ctx, next) => {
      if (ctx.session.frontTransport !== 'stdio' && ctx.identity.authMethod === 'anonymous' && !config.auth.anonymous) {
        throw new JsonRpcError(RpcCode.InvalidRequest, 'Unauthorized: anonymous access is disabled (auth.anonymous)');
      }
      return next();
    },
  };
}

/**
 * Loads the policy (throws `PolicyError` when the file is bad: the program exits naming it), then
 * builds the authorize stage, the list filter, the redaction stage and the outbound redaction, all
 * reading the active version per request so that a new version applies at once.
 */
export async function startPolicyRuntime(
  config: Config,
  logger: Logger,
  catalog: () => Catalog | undefined,
  source: PolicySource | undefined = policySourceOf(config),
): Promise<PolicyRuntime> {
  const identify = identifyStage(config);
  if (source === undefined) {
    return {
      stages: [identify],
      listFilter: undefined,
      outbound: undefined,
      active: undefined,
      close: () => undefined,
    };
  }
  const hashKey = config.redaction.hashKey === undefined ? undefined : resolveSecret(config.redaction.hashKey);
  if (config.redaction.hashKey !== undefined && hashKey === undefined) {
    throw new RedactionSettingError(`redaction.hashKey: ${config.redaction.hashKey} is not set`);
  }
  if (hashKey !== undefined && Buffer.byteLength(hashKey) < 16) {
    throw new RedactionSettingError('redaction.hashKey: the key must be at least 16 bytes');
  }
  const log = logger.child({ component: 'policy' });
  const active = await ActivePolicy.start(source, {
    onLoaded: (policy, previous) =>
      log.info({ source: source.description, version: policy.version, previous: previous.version }, 'policy reloaded'),
    onRejected: (error, kept) =>
      log.error(
        { source: source.description, kept: kept.version, err: describeError(error) },
        'new policy version rejected; the previous version stays in force',
      ),
  });
  log.info(
    { source: source.description, version: active.current().version, rules: active.current().rules.length },
    'policy loaded',
  );
  const policy = (): CompiledPolicy => active.current();

  const redactor = new Redactor({ rules: () => policy().redaction, ...(hashKey !== undefined ? { hashKey } : {}) });
  const redactOutbound = createOutboundRedaction(redactor);

  const listFilter: ListFilter = (ctx, kind, item: CatalogItem) => {
    const listed: ListedItem = {
      kind: LIST_TARGET_KIND[kind],
      upstream: item.upstream,
      name: item.original,
      namespacedName: item.exposed,
    };
    try {
      return !isHidden(policy(), ctx.identity, listed);
    } catch {
      return false; // fail closed
    }
  };

  const outputSchemaOf = (ctx: { target: { namespacedName: string } | undefined }): JsonSchema | undefined => {
    const name = ctx.target?.namespacedName;
    const schema = name === undefined ? undefined : catalog()?.peekName('tools', name)?.item.outputSchema;
    return typeof schema === 'object' && schema !== null ? (schema as JsonSchema) : undefined;
  };

  const outbound: OutboundFilter = async (message) =>
    (
      await redactOutbound({
        method: message.method,
        params: message.params,
        upstream: message.upstream,
        related: message.related,
        identity: message.identity,
      })
    ).params;

  return {
    stages: [
      identify,
      // approve/confirm go on to the hold stage, which must release them (fail closed without it).
      createAuthorizeStage({ policy, pending: 'next' }),
      createRedactStage({ redactor, outputSchemaOf: (ctx) => outputSchemaOf(ctx) }),
    ],
    listFilter,
    outbound,
    active,
    close: () => active.close(),
  };
}
