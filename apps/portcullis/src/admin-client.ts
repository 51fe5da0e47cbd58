import { describeError } from '@portcullis/core';
import { Option } from 'commander';

/** A command's failure: its exit code and a message that never carries the API key. */
export class CommandFailed extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
    /** The admin API's `error.reason` when the failure is answered over HTTP (default from the exit code). */
    readonly reason?: string,
  ) {
    super(message);
  }
}

/**
 * How the admin API answers a `CommandFailed` its operations throw, by exit code: 2 (bad input) →
 * 400, 3 (unknown) → 404, 4 (not allowed) → 403. `AdminClient` maps the statuses back.
 */
export const STATUS_OF_EXIT: Readonly<Record<number, number>> = { 2: 400, 3: 404, 4: 403 };

/** Exit codes for the admin API's statuses: 401 (a refused key) and 400 are 2; unlisted ones are 1. */
export type ExitCodesByStatus = Readonly<Partial<Record<number, number>>>;

const COMMON_EXITS: ExitCodesByStatus = { 400: 2, 401: 2 };

type Method = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** A running gateway's admin API (`--gateway URL`, authenticated with `--key` / PORTCULLIS_API_KEY). */
export class AdminClient {
  private readonly base: string;

  constructor(
    url: string,
    private readonly key: string,
    private readonly exits: ExitCodesByStatus,
  ) {
    this.base = url.replace(/\/+$/, '').replace(/\/mcp$/, '');
  }

  /** Sends one request and returns the JSON answer; throws `CommandFailed` with the mapped exit code. */
  async call(
    method: Method,
    path: string,
    body?: Record<string, unknown>,
    headers: Readonly<Record<string, string>> = {},
  ): Promise<unknown> {
    let response: Response;
    try {
      response = await fetch(`${this.base}/admin/v1/${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.key}`,
          ...(body === undefined ? {} : { 'content-type': 'application/json' }),
          ...headers,
        },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      });
    } catch (error) {
      throw new CommandFailed(1, `cannot reach the gateway at ${this.base}: ${describeError(error)}`);
    }
    const text = await response.text();
    let parsed: unknown;
    try {
      parsed = text === '' ? undefined : JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (response.ok) return parsed;
    const error = (parsed as { error?: { message?: unknown; reason?: unknown } } | undefined)?.error;
    const said = typeof error?.message === 'string' ? error.message : `HTTP ${response.status}`;
    const reason = typeof error?.reason === 'string' ? error.reason : undefined;
    const exitCode = this.exits[response.status] ?? COMMON_EXITS[response.status] ?? 1;
    if (response.status === 401)
      throw new CommandFailed(exitCode, `the gateway refused the API key (401): ${said}`, reason);
    if (exitCode === 1) throw new CommandFailed(1, `the gateway answered ${response.status}: ${said}`, reason);
    throw new CommandFailed(exitCode, said, reason);
  }
}

/** How a command reaches a running gateway: `--gateway URL` and `--key KEY` (or their environment variables). */
export interface GatewayTargetOptions {
  readonly gateway?: string;
  readonly key?: string;
}

/** The client for `--gateway`, or `undefined` without it; exit 2 when the key is missing. */
export function adminClientFor(options: GatewayTargetOptions, exits: ExitCodesByStatus): AdminClient | undefined {
  if (options.gateway === undefined || options.gateway === '') return undefined;
  if (options.key === undefined || options.key === '') {
    throw new CommandFailed(2, '--gateway needs an API key: --key KEY or the environment variable PORTCULLIS_API_KEY');
  }
  return new AdminClient(options.gateway, options.key, exits);
}

export const gatewayOption = (): Option =>
  new Option('--gateway <url>', "a running gateway's URL: use its admin API, authenticated with the API key").env(
    'PORTCULLIS_GATEWAY_URL',
  );

export const keyOption = (): Option =>
  new Option('--key <key>', 'the API key for --gateway (prefer the environment variable)').env('PORTCULLIS_API_KEY');
