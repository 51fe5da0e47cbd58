import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  activePolicyVersion,
  activePolicyVersionNumber,
  applyPolicyVersion,
  createApiKey,
  findApiKeyBySecret,
  hashApiKeySecret,
  listApiKeys,
  listPolicyVersions,
  revokeApiKey,
  type Store,
  touchApiKey,
} from '../src/index.js';
import { BACKEND_NAMES, type Backend, createBackend } from './support/backends.js';
import { holdPostgresShared } from './support/pg-lock.js';

let releasePostgres: (() => void) | undefined;
beforeAll(async () => {
  releasePostgres = await holdPostgresShared();
}, 300_000);
afterAll(() => releasePostgres?.());

describe.each(BACKEND_NAMES)('API keys and policy versions (%s)', (name) => {
  let backend: Backend;
  let store: Store;
  beforeAll(async () => {
    backend = await createBackend(name);
    store = await backend.open();
  }, 120_000);
  afterAll(async () => {
    await store?.close();
    await backend?.dispose();
  });

  it('issues a key once, stores only its hash, finds it, revokes it', async () => {
    const { key, secret } = await createApiKey(store, { name: 'ci-bot', groups: ['agents', 'ci'] });
    expect(secret).toMatch(/^pcs_[A-Za-z0-9_-]{43}$/);
    expect(key.prefix).toBe(secret.slice(0, 10));
    const rows = await store.db.selectFrom('portcullis_api_keys').selectAll().execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]?.secret_hash).toBe(hashApiKeySecret(secret));
    expect(JSON.stringify(rows)).not.toContain(secret);

    expect((await findApiKeyBySecret(store, secret))?.groups).toEqual(['agents', 'ci']);
    expect(await findApiKeyBySecret(store, `${secret.slice(0, -1)}x`)).toBeUndefined();
    expect(await findApiKeyBySecret(store, 'not-a-key')).toBeUndefined();
    await expect(createApiKey(store, { name: 'ci-bot', groups: [] })).rejects.toMatchObject({ code: 'apikey.exists' });
    await expect(createApiKey(store, { name: 'bad name', groups: [] })).rejects.toMatchObject({
      code: 'apikey.invalid',
    });

    await touchApiKey(store, key.id);
    expect((await listApiKeys(store))[0]?.lastUsedAt).toBeInstanceOf(Date);

    expect((await revokeApiKey(store, 'ci-bot'))?.id).toBe(key.id);
    expect(await revokeApiKey(store, 'ci-bot')).toBeUndefined();
    expect(await findApiKeyBySecret(store, secret)).toBeUndefined();
    // A revoked key's name can be issued again; revoke by id.
    const again = await createApiKey(store, { name: 'ci-bot', groups: [] });
    expect((await revokeApiKey(store, again.key.id))?.name).toBe('ci-bot');
    expect(await listApiKeys(store, { live: true })).toHaveLength(0);
    expect(await listApiKeys(store)).toHaveLength(2);
  });

  it('numbers applied versions, keeps them, and keeps one active', async () => {
    expect(await activePolicyVersionNumber(store)).toBeUndefined();
    const first = await applyPolicyVersion(store, { document: 'rules: []\n', source: 'a.yaml' });
    const results = await Promise.all([
      applyPolicyVersion(store, { document: 'rules: [] # b\n' }),
      applyPolicyVersion(store, { document: 'rules: [] # c\n' }),
    ]);
    expect(first.version).toBe(1);
    expect(results.map((r) => r.version).sort()).toEqual([2, 3]);
    const active = await activePolicyVersion(store);
    expect(active?.version).toBe(3);
    expect(await activePolicyVersionNumber(store)).toBe(3);
    const all = await listPolicyVersions(store);
    expect(all.map((v) => v.version)).toEqual([3, 2, 1]);
    expect(all.filter((v) => v.active)).toHaveLength(1);
  });
});
