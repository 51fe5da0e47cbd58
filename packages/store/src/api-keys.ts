import { createHash, randomBytes } from 'node:crypto';
import { PortcullisError } from '@portcullis/core';
import { toStoreError } from './errors.js';
import { uuidv7 } from './ids.js';
import type { Store } from './store.js';

/** Every gateway-issued API key starts with this, so a leaked one is recognisable (secret scanners). */
export const API_KEY_PREFIX = 'pcs_';

/** How many characters of a key (after the prefix) lists show to tell keys apart. */
const SHOWN_CHARS = 6;

/** Key names: what rules see as the identity subject. */
const KEY_NAME = /^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$/;

export interface ApiKeyInfo {
  readonly id: string;
  readonly name: string;
  /** `pcs_` and the first characters of the secret: enough to recognise a key, never to use it. */
  readonly prefix: string;
  readonly groups: readonly string[];
  readonly createdAt: Date;
  readonly revokedAt: Date | undefined;
  readonly lastUsedAt: Date | undefined;
  /** An admin key: may manage the gateway through the admin API (upstreams, apply). */
  readonly admin: boolean;
}

/** A new key: the secret is returned once and never stored. */
export interface CreatedApiKey {
  readonly key: ApiKeyInfo;
  readonly secret: string;
}

/** A fresh secret: `pcs_` + 32 random bytes (256 bits) in base64url. */
export function generateApiKeySecret(): string {
  return `${API_KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
}

/**
 * What the store keeps of a secret: SHA-256, hex. The secrets are 256 random bits, so there is
 * nothing to brute-force and a slow password hash (bcrypt, scrypt, argon2) would only slow every
 * authenticated request down; the hash lets the store find a key by an indexed equality lookup.
 */
export function hashApiKeySecret(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** Whether `value` looks like a gateway-issued key (before any lookup). */
export function isApiKeySecret(value: string): boolean {
  return value.startsWith(API_KEY_PREFIX) && /^[A-Za-z0-9_-]{20,200}$/.test(value.slice(API_KEY_PREFIX.length));
}

export function validateApiKeyName(name: string): string | undefined {
  if (name === 'anonymous') return '"anonymous" is the identity of unauthenticated agents, not a key name';
  return KEY_NAME.test(name)
    ? undefined
    : 'a key name is 1-128 letters, digits, ".", "_", "@" or "-", starting with a letter or digit';
}

interface ApiKeyRow {
  id: string;
  name: string;
  prefix: string;
  groups: unknown;
  created_at: Date | string;
  revoked_at: Date | string | null;
  last_used_at: Date | string | null;
  admin: boolean;
}

function toInfo(row: ApiKeyRow): ApiKeyInfo {
  const groups = typeof row.groups === 'string' ? (JSON.parse(row.groups) as unknown) : row.groups;
  return {
    id: row.id,
    name: row.name,
    prefix: row.prefix,
    groups: Array.isArray(groups) ? groups.filter((g): g is string => typeof g === 'string') : [],
    createdAt: new Date(row.created_at),
    revokedAt: row.revoked_at === null ? undefined : new Date(row.revoked_at),
    lastUsedAt: row.last_used_at === null ? undefined : new Date(row.last_used_at),
    admin: row.admin,
  };
}

const COLUMNS = ['id', 'name', 'prefix', 'groups', 'created_at', 'revoked_at', 'last_used_at', 'admin'] as const;

/**
 * Issues a key. Throws `apikey.invalid` for a bad name and `apikey.exists` when a live key already
 * has that name (a revoked key's name may be reused).
 */
export async function createApiKey(
  store: Store,
  input: { name: string; groups: readonly string[]; admin?: boolean; actor?: string },
): Promise<CreatedApiKey> {
  const problem = validateApiKeyName(input.name);
  if (problem !== undefined) throw new PortcullisError('apikey.invalid', problem);
  const secret = generateApiKeySecret();
  const id = uuidv7();
  const createdAt = new Date();
  const prefix = secret.slice(0, API_KEY_PREFIX.length + SHOWN_CHARS);
  const groups = [...new Set(input.groups)];
  const admin = input.admin === true;
  try {
    const existing = await store.db
      .selectFrom('portcullis_api_keys')
      .select('id')
      .where('name', '=', input.name)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    if (existing) throw new PortcullisError('apikey.exists', `a key named "${input.name}" already exists`);
    await store.db
      .insertInto('portcullis_api_keys')
      .values({
        id,
        name: input.name,
        prefix,
        secret_hash: hashApiKeySecret(secret),
        groups: JSON.stringify(groups),
        created_at: createdAt.toISOString(),
        revoked_at: null,
        last_used_at: null,
        admin,
      })
      .execute();
  } catch (error) {
    if (error instanceof PortcullisError) throw error;
    if ((error as { code?: unknown }).code === '23505') {
      throw new PortcullisError('apikey.exists', `a key named "${input.name}" already exists`, { cause: error });
    }
    throw toStoreError(error, 'create api key');
  }
  await store
    .recordAdminAction({
      actor: input.actor ?? 'cli',
      action: 'apikey.create',
      target: input.name,
      details: { id, groups, admin },
    })
    .catch(() => undefined);
  return {
    secret,
    key: { id, name: input.name, prefix, groups, createdAt, revokedAt: undefined, lastUsedAt: undefined, admin },
  };
}

/** Every key (revoked ones too unless `live`), oldest first. Never a secret. */
export async function listApiKeys(store: Store, options: { live?: boolean } = {}): Promise<ApiKeyInfo[]> {
  try {
    let query = store.db.selectFrom('portcullis_api_keys').select(COLUMNS).orderBy('created_at').orderBy('id');
    if (options.live === true) query = query.where('revoked_at', 'is', null);
    return (await query.execute()).map(toInfo);
  } catch (error) {
    throw toStoreError(error, 'list api keys');
  }
}

/**
 * Revokes the live key with this name, or the key with this id. Returns it, or `undefined` when no
 * such live key exists.
 */
export async function revokeApiKey(
  store: Store,
  nameOrId: string,
  options: { actor?: string } = {},
): Promise<ApiKeyInfo | undefined> {
  const isId = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(nameOrId);
  let revoked: ApiKeyInfo | undefined;
  try {
    const row = await store.db
      .updateTable('portcullis_api_keys')
      .set({ revoked_at: new Date().toISOString() })
      .where('revoked_at', 'is', null)
      .where((eb) => (isId ? eb.or([eb('id', '=', nameOrId), eb('name', '=', nameOrId)]) : eb('name', '=', nameOrId)))
      .returning(COLUMNS)
      .executeTakeFirst();
    revoked = row === undefined ? undefined : toInfo(row);
  } catch (error) {
    throw toStoreError(error, 'revoke api key');
  }
  if (revoked !== undefined) {
    await store
      .recordAdminAction({
        actor: options.actor ?? 'cli',
        action: 'apikey.revoke',
        target: revoked.name,
        details: { id: revoked.id },
      })
      .catch(() => undefined);
  }
  return revoked;
}

/** The live key whose secret this is, or `undefined` (unknown or revoked). */
export async function findApiKeyBySecret(store: Store, secret: string): Promise<ApiKeyInfo | undefined> {
  if (!isApiKeySecret(secret)) return undefined;
  try {
    const row = await store.db
      .selectFrom('portcullis_api_keys')
      .select(COLUMNS)
      .where('secret_hash', '=', hashApiKeySecret(secret))
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return row === undefined ? undefined : toInfo(row);
  } catch (error) {
    throw toStoreError(error, 'find api key');
  }
}

/** Records that a key was used (callers throttle this; it is bookkeeping, not audit). */
export async function touchApiKey(store: Store, id: string, at: Date = new Date()): Promise<void> {
  try {
    await store.db
      .updateTable('portcullis_api_keys')
      .set({ last_used_at: at.toISOString() })
      .where('id', '=', id)
      .execute();
  } catch (error) {
    throw toStoreError(error, 'touch api key');
  }
}
