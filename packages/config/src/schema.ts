import { DEFAULT_SEPARATOR, UPSTREAM_NAME_PATTERN } from '@portcullis/core';
import { z } from 'zod';

const stringMap = z.record(z.string(), z.string());

/** `shared`: one connection serves every agent session. `per-session`: one connection per agent session. */
export const IsolationSchema = z.enum(['shared', 'per-session']);
/** Which handshake to use with an upstream: probe (`auto`), or pin an era. */
export const UpstreamEraSchema = z.enum(['auto', 'legacy', 'modern']);

const upstreamCommon = {
  isolation: IsolationSchema.optional(),
  /** Name prefix for tools/prompts and URI prefix for resources; `false` exposes names unchanged. Default: the upstream's name. */
  prefix: z.union([z.string().regex(UPSTREAM_NAME_PATTERN), z.literal(false)]).optional(),
  era: UpstreamEraSchema.default('auto'),
  disabled: z.boolean().default(false),
  /** A sandbox: `portcullis replay --execute` may re-run recorded tool calls against it (others need --force). */
  sandbox: z.boolean().optional(),
  /** Per-request timeout towards this upstream (reset by progress notifications). */
  requestTimeoutMs: z.number().int().positive().default(60_000),
  /** Interval between liveness checks of a connected upstream; 0 disables them. */
  healthCheckIntervalMs: z.number().int().nonnegative().default(30_000),
};

export const StdioUpstreamSchema = z
  .object({
    transport: z.literal('stdio'),
    command: z.string().min(1),
    args: z.array(z.string()).default([]),
    env: stringMap.default({}),
    cwd: z.string().optional(),
    ...upstreamCommon,
  })
  .strict();

export const HttpUpstreamSchema = z
  .object({
    transport: z.enum(['streamable-http', 'sse']),
    url: z.url(),
    headers: stringMap.default({}),
    ...upstreamCommon,
  })
  .strict();

export const UpstreamSchema = z.discriminatedUnion('transport', [StdioUpstreamSchema, HttpUpstreamSchema]);

export const ServerSchema = z
  .object({
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    /** Host header values accepted besides the loopback names (DNS-rebinding protection). */
    allowedHosts: z.array(z.string()).default([]),
    /** Origin header values accepted besides loopback origins; a request without Origin is accepted. */
    allowedOrigins: z.array(z.string()).default([]),
    /** Largest JSON-RPC message accepted from an agent, in bytes. */
    maxMessageBytes: z
      .number()
      .int()
      .positive()
      .default(4 * 1024 * 1024),
    /**
     * A 2025-era HTTP session (Streamable HTTP or SSE) with no request and no open stream for this
     * long is closed, so agents that vanish without ending their session free what it holds. 0 keeps
     * sessions until the agent ends them.
     */
    sessionIdleTimeoutMs: z
      .number()
      .int()
      .nonnegative()
      .default(30 * 60 * 1000),
  })
  .strict();

export const GatewaySchema = z
  .object({
    name: z.string().default('portcullis'),
    separator: z
      .string()
      .regex(/^[A-Za-z0-9_.-]{1,4}$/)
      .default(DEFAULT_SEPARATOR),
    /** `list_changed` notifications from upstreams are merged into one per window. */
    listChangedDebounceMs: z.number().int().nonnegative().default(100),
    pageSize: z.number().int().positive().default(100),
  })
  .strict();

export const LoggingSchema = z
  .object({
    level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    /** Log file; stdio mode logs to stderr when absent, HTTP mode to stdout. */
    file: z.string().optional(),
  })
  .strict();

export const StdioIdentitySchema = z
  .object({
    subject: z.string().min(1).default('local'),
    groups: z.array(z.string()).default([]),
  })
  .strict();

/** The session-log database. Without `url` (or `DATABASE_URL`), an embedded PGlite database in `dataDir`. */
export const DatabaseSchema = z
  .object({
    url: z.string().min(1).optional(),
    dataDir: z.string().min(1).default('./.portcullis/data'),
  })
  .strict();

/** The session log's durability and retention. */
export const AuditSchema = z
  .object({
    /** `closed`: refuse new tool calls while the store is down. `open`: let them through and spool events locally. */
    onStoreFailure: z.enum(['closed', 'open']).default('closed'),
    /** Sessions older than this are pruned whole, e.g. `90d`, `12h`. Absent: kept forever. */
    retention: z
      .string()
      .regex(/^\d+(\.\d+)?(ms|s|m|h|d|w)$/, 'a duration such as 90d, 12h or 30m')
      .optional(),
    /** Where events are spooled while the store is down (default: `spool` beside the data directory). */
    spoolDir: z.string().min(1).optional(),
    batch: z
      .object({
        maxEvents: z.number().int().positive().default(500),
        intervalMs: z.number().int().nonnegative().default(50),
        maxQueue: z.number().int().positive().default(20_000),
      })
      .strict()
      .prefault({}),
  })
  .strict();

/** Approval holds (the policy's `approve` decisions). */
export const ApprovalConfigSchema = z
  .object({
    /** `wait` (default): the agent's request stays open; `retry`: every hold answers at once (a rule may say `retry` too). */
    mode: z.enum(['wait', 'retry']).default('wait'),
    /** Progress heartbeats to a waiting agent that sent a progress token. */
    heartbeatMs: z.number().int().positive().default(5_000),
    /** How often a held call re-reads its approval when no notification arrives (PGlite, or a lost LISTEN). */
    pollMs: z.number().int().positive().default(500),
    /** Timeout of a webhook POST. */
    webhookTimeoutMs: z.number().int().positive().default(5_000),
  })
  .strict();

/** The policy document (rules and redaction); absent: every call is allowed and nothing is redacted. */
export const PolicyConfigSchema = z
  .object({
    /**
     * Where the policy in force comes from: `file` (default) — `file` below, reloaded when it
     * changes; `store` — the active version applied with `portcullis policy apply` (picked up within
     * about a second; before the first apply every call is denied).
     */
    source: z.enum(['file', 'store']).default('file'),
    /** A policy file (YAML), compiled at start and reloaded whenever it changes (`source: file`). */
    file: z.string().min(1).optional(),
  })
  .strict()
  .refine((policy) => policy.source === 'store' || policy.file !== undefined, {
    message: 'policy.file is required unless policy.source is "store"',
    path: ['file'],
  });

/** How HTTP agents authenticate. */
export const AuthSchema = z
  .object({
    /**
     * `true`: HTTP agents without an `Authorization` header are served as the anonymous identity
     * (local development). `false` (default): only agents presenting an API key
     * (`Authorization: Bearer pcs_…`, issued by `portcullis keys create`) are served; others get 401.
     */
    anonymous: z.boolean().default(false),
    /**
     * API keys in any of these groups are admins: they may manage upstreams through the admin API
     * (`/admin/v1/upstreams`, `/admin/v1/apply`), like keys created with `keys create --admin`.
     */
    adminGroups: z.array(z.string().min(1)).default([]),
  })
  .strict();

/** A secret: `env:NAME` reads the environment variable `NAME`; anything else is the value itself. */
export const SecretRefSchema = z.string().min(1);

export const RedactionConfigSchema = z
  .object({
    /** Key of the `hash` action's HMAC (at least 16 bytes), as a secret reference. Absent: a random key per process. */
    hashKey: SecretRefSchema.optional(),
  })
  .strict();

export const ConfigSchema = z
  .object({
    server: ServerSchema.prefault({}),
    gateway: GatewaySchema.prefault({}),
    logging: LoggingSchema.prefault({}),
    identity: StdioIdentitySchema.prefault({}),
    database: DatabaseSchema.prefault({}),
    audit: AuditSchema.prefault({}),
    approval: ApprovalConfigSchema.prefault({}),
    policy: PolicyConfigSchema.optional(),
    auth: AuthSchema.prefault({}),
    redaction: RedactionConfigSchema.prefault({}),
    upstreams: z.record(
      z.string().regex(UPSTREAM_NAME_PATTERN, 'upstream names are lowercase letters, digits and "-"'),
      UpstreamSchema,
    ),
  })
  .strict();

export type Config = z.infer<typeof ConfigSchema>;
export type UpstreamConfig = z.infer<typeof UpstreamSchema>;
export type StdioUpstreamConfig = z.infer<typeof StdioUpstreamSchema>;
export type HttpUpstreamConfig = z.infer<typeof HttpUpstreamSchema>;
export type Isolation = z.infer<typeof IsolationSchema>;
export type DatabaseConfig = z.infer<typeof DatabaseSchema>;
export type AuditConfig = z.infer<typeof AuditSchema>;
export type PolicyConfig = z.infer<typeof PolicyConfigSchema>;
export type AuthConfig = z.infer<typeof AuthSchema>;
export type UpstreamEra = z.infer<typeof UpstreamEraSchema>;

/** One upstream with its name and resolved defaults: the unit the upstream registry hands out. */
export type UpstreamSpec = UpstreamConfig & {
  readonly name: string;
  readonly isolation: Isolation;
  /** Resolved: `undefined` means names pass unprefixed. */
  readonly namePrefix: string | undefined;
};

export function resolveUpstream(name: string, config: UpstreamConfig): UpstreamSpec {
  const isolation = config.isolation ?? (config.transport === 'stdio' ? 'per-session' : 'shared');
  const namePrefix = config.prefix === false ? undefined : (config.prefix ?? name);
  return { ...config, name, isolation, namePrefix };
}

/** Resolves a secret reference (`env:NAME` or a literal); `undefined` when the variable is unset or empty. */
export function resolveSecret(reference: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (!reference.startsWith('env:')) return reference;
  const value = env[reference.slice(4)];
  return value === undefined || value === '' ? undefined : value;
}
