import { describeError, PortcullisError } from '@portcullis/core';
import { type ApiKeyInfo, createApiKey, listApiKeys, revokeApiKey } from '@portcullis/store';
import type { Command } from 'commander';
import {
  describeStore,
  loadConfigForCommand,
  type OutputFormat,
  openStoreForCommand,
  parseOutputFormat,
  storeOptionsFor,
} from '../session-log.js';

/** Exit codes (see README): 0 done, 1 runtime failure, 2 bad usage, 3 no such key (revoke). */
const EXIT_BAD_INPUT = 2;
const EXIT_NOT_FOUND = 3;

function parseGroups(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function keyJson(key: ApiKeyInfo): Record<string, unknown> {
  return {
    id: key.id,
    name: key.name,
    prefix: key.prefix,
    groups: key.groups,
    createdAt: key.createdAt.toISOString(),
    revokedAt: key.revokedAt?.toISOString() ?? null,
    lastUsedAt: key.lastUsedAt?.toISOString() ?? null,
    admin: key.admin,
  };
}

interface StoreCommandOptions {
  readonly config: string;
  readonly output: OutputFormat;
}

/** Runs `work` on the configured store (migrations applied: keys may be the first thing created). */
async function withStore(
  options: StoreCommandOptions,
  work: (store: Awaited<ReturnType<typeof openStoreForCommand>>) => Promise<void>,
): Promise<void> {
  const config = await loadConfigForCommand(options.config);
  const store = await openStoreForCommand(config, { migrate: true });
  try {
    await work(store);
  } catch (error) {
    if (error instanceof PortcullisError && (error.code === 'apikey.invalid' || error.code === 'apikey.exists')) {
      process.stderr.write(`portcullis: ${error.message}\n`);
      process.exitCode = EXIT_BAD_INPUT;
    } else {
      process.stderr.write(
        `portcullis: API keys (${describeStore(storeOptionsFor(config))}): ${describeError(error)}\n`,
      );
      process.exitCode = 1;
    }
  } finally {
    await store.close();
  }
}

/** `portcullis keys create|list|revoke`: API keys for HTTP agents, directly on the store. */
export function registerKeysCommands(program: Command): void {
  const keys = program
    .command('keys')
    .description('API keys for HTTP agents (Authorization: Bearer <key>); the store keeps only their hashes');

  keys
    .command('create')
    .description('issue a key and print it once (it cannot be shown again)')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .requiredOption('--name <name>', 'the identity subject the key authenticates as')
    .option('--groups <groups>', 'comma-separated groups of that identity', parseGroups, [] as string[])
    .option('--admin', 'an admin key: may manage upstreams through the admin API (upstream …, apply --gateway)')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: StoreCommandOptions & { name: string; groups: string[]; admin?: boolean }) => {
      await withStore(options, async (store) => {
        const { key, secret } = await createApiKey(store, {
          name: options.name,
          groups: options.groups,
          admin: options.admin === true,
        });
        if (options.output === 'json') {
          process.stdout.write(`${JSON.stringify({ ...keyJson(key), key: secret })}\n`);
        } else {
          process.stdout.write(`${secret}\n`);
          process.stderr.write(
            `key "${key.name}" (${key.id}, groups: ${key.groups.join(',') || '-'}${key.admin ? ', admin' : ''}) created; ` +
              'this is the only time it is shown: store it now\n',
          );
        }
      });
    });

  keys
    .command('list')
    .description('list keys (never their secrets)')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: StoreCommandOptions) => {
      await withStore(options, async (store) => {
        const all = await listApiKeys(store);
        if (options.output === 'json') {
          process.stdout.write(`${JSON.stringify(all.map(keyJson))}\n`);
          return;
        }
        if (all.length === 0) {
          process.stdout.write('no API keys\n');
          return;
        }
        const lines = all.map((key) =>
          [
            key.name,
            key.id,
            `${key.prefix}…`,
            `groups=${key.groups.join(',') || '-'}`,
            `role=${key.admin ? 'admin' : 'agent'}`,
            `created=${key.createdAt.toISOString()}`,
            `last-used=${key.lastUsedAt?.toISOString() ?? 'never'}`,
            key.revokedAt === undefined ? 'active' : `revoked=${key.revokedAt.toISOString()}`,
          ].join('  '),
        );
        process.stdout.write(`${lines.join('\n')}\n`);
      });
    });

  keys
    .command('revoke')
    .description(
      `revoke a key by name or id (gateways stop accepting it within seconds); exit ${EXIT_NOT_FOUND} if none`,
    )
    .argument('<name-or-id>', 'the key name or id')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (nameOrId: string, options: StoreCommandOptions) => {
      await withStore(options, async (store) => {
        const revoked = await revokeApiKey(store, nameOrId);
        if (revoked === undefined) {
          process.stderr.write(`portcullis: no active API key named or with id "${nameOrId}"\n`);
          process.exitCode = EXIT_NOT_FOUND;
          return;
        }
        if (options.output === 'json') process.stdout.write(`${JSON.stringify(keyJson(revoked))}\n`);
        else process.stdout.write(`revoked "${revoked.name}" (${revoked.id})\n`);
      });
    });
}
