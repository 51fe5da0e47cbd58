import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { anonymousIdentity, type Identity } from '@portcullis/core';
import type { HttpAuthenticator } from '@portcullis/front';
import { findApiKeyBySecret, type Store, touchApiKey } from '@portcullis/store';

export interface ApiKeyAuthenticatorOptions {
  /** Agents without an `Authorization` header are anonymous (`auth.anonymous: true`) or refused. */
  readonly anonymous: boolean;
  /** A key in any of these groups is an admin (`auth.adminGroups`), as is a key created with `--admin`. */
  readonly adminGroups?: readonly string[];
  /**
   * How long a lookup (found or not) is reused. A revoked key keeps working at most this long on a
   * gateway that has just seen it. Default 2 s.
   */
  readonly cacheMs?: number;
  /** How often `last_used_at` is written per key at most. Default 60 s. */
  readonly touchEveryMs?: number;
  /** Bookkeeping failures (`last_used_at`); never carries the key. */
  readonly onError?: (error: unknown) => void;
}

interface CacheEntry {
  readonly identity: Identity | undefined;
  readonly expires: number;
}

const MAX_CACHE_ENTRIES = 10_000;

/**
 * The HTTP front's authenticator for gateway-issued API keys: `Authorization: Bearer pcs_…` → the
 * key's identity (`authMethod: 'api-key'`, subject = key name, its groups, `admin` for an admin key
 * or one in `adminGroups`); an unknown, revoked or
 * malformed credential → `undefined` (401); no header → anonymous when allowed. Lookups are cached
 * briefly, keyed by the secret's hash (the secret itself is neither kept nor logged).
 */
export function createApiKeyAuthenticator(store: Store, options: ApiKeyAuthenticatorOptions): HttpAuthenticator {
  const cacheMs = options.cacheMs ?? 2_000;
  const touchEveryMs = options.touchEveryMs ?? 60_000;
  const cache = new Map<string, CacheEntry>();
  const touched = new Map<string, number>();
  const anonymous = anonymousIdentity();
  const adminGroups = new Set(options.adminGroups ?? []);

  return async (request: IncomingMessage) => {
    const raw = request.headers.authorization;
    if (raw === undefined || raw === '') return options.anonymous ? anonymous : undefined;
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(raw);
    if (!match?.[1]) return undefined;
    const secret = match[1];
    const cacheKey = createHash('sha256').update(secret).digest('hex');
    const now = Date.now();
    const cached = cache.get(cacheKey);
    if (cached !== undefined && cached.expires > now) return cached.identity;

    const key = await findApiKeyBySecret(store, secret);
    const identity: Identity | undefined =
      key === undefined
        ? undefined
        : Object.freeze({
            subject: key.name,
            groups: Object.freeze([...key.groups]),
            authMethod: 'api-key' as const,
            claims: Object.freeze({ keyId: key.id }),
            admin: key.admin || key.groups.some((group) => adminGroups.has(group)),
          });
    if (cache.size >= MAX_CACHE_ENTRIES) cache.clear();
    cache.set(cacheKey, { identity, expires: now + cacheMs });
    if (key !== undefined && (touched.get(key.id) ?? 0) + touchEveryMs <= now) {
      touched.set(key.id, now);
      touchApiKey(store, key.id).catch((error: unknown) => options.onError?.(error));
    }
    return identity;
  };
}
