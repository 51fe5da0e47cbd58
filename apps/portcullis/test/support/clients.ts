import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as V1StdioTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as V1HttpTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  ListRootsRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { onCleanup } from './processes.js';

/**
 * Raw SDK clients for the feature suites: unlike `Agent` (agents.ts) they expose the whole client
 * API, and record what the server sent them (resource updates, log messages, server requests).
 */

export const E2E_ROOT = { uri: 'file:///tmp/portcullis-e2e-root', name: 'e2e root' };

/** Canned answers for the fixture's elicitation prompts, keyed by a fragment of the message. */
export function elicitAnswer(message: string): Record<string, string | number | boolean> {
  if (/favorite color/i.test(message)) return { color: 'teal' };
  if (/name/i.test(message)) return { name: 'Ada' };
  if (/confirm/i.test(message)) return { ok: true };
  if (/context/i.test(message)) return { context: 'e2e context' };
  return { response: 'from-e2e', value: 'from-e2e' };
}

export const SAMPLED = 'Paris, says the e2e model';

export interface Recorder {
  /** `params.uri` of every notifications/resources/updated, in order. */
  readonly updates: string[];
  /** `params.data` of every notifications/message, in order. */
  readonly logs: unknown[];
  /** Methods of the server-to-client requests answered, in order. */
  readonly serverRequests: string[];
  /** Resolves once `check` holds (re-evaluated at each recorded event). */
  until(check: () => boolean, timeoutMs?: number, what?: string | (() => string)): Promise<void>;
}

function recorder(): Recorder & { changed(): void } {
  let waiters: (() => void)[] = [];
  const record: Recorder & { changed(): void } = {
    updates: [],
    logs: [],
    serverRequests: [],
    changed: () => {
      const current = waiters;
      waiters = [];
      for (const wake of current) wake();
    },
    until: async (check, timeoutMs = 10_000, what = 'event') => {
      const deadline = Date.now() + timeoutMs;
      while (!check()) {
        const left = deadline - Date.now();
        if (left <= 0) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, left);
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
  return record;
}

export type V2Era = 'legacy' | 'modern';

export interface V2Handle {
  readonly client: Client;
  readonly seen: Recorder;
}

/** A v2 SDK client declaring sampling, elicitation and roots, answering them with canned values. */
export async function connectV2Client(
  transport: StreamableHTTPClientTransport | StdioClientTransport,
  era: V2Era,
): Promise<V2Handle> {
  const seen = recorder();
  const client = new Client(
    { name: `e2e-features-${era}`, version: '1.0.0' },
    {
      capabilities: { sampling: {}, elicitation: { form: {} }, roots: { listChanged: true } },
      ...(era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {}),
    },
  );
  client.setRequestHandler('sampling/createMessage', async () => {
    seen.serverRequests.push('sampling/createMessage');
    seen.changed();
    return { role: 'assistant', model: 'e2e-model', content: { type: 'text', text: SAMPLED } };
  });
  client.setRequestHandler('elicitation/create', async (request) => {
    seen.serverRequests.push('elicitation/create');
    seen.changed();
    return { action: 'accept', content: elicitAnswer(request.params.message) };
  });
  client.setRequestHandler('roots/list', async () => {
    seen.serverRequests.push('roots/list');
    seen.changed();
    return { roots: [E2E_ROOT] };
  });
  client.setNotificationHandler('notifications/resources/updated', (notification) => {
    seen.updates.push(notification.params.uri);
    seen.changed();
  });
  client.setNotificationHandler('notifications/message', (notification) => {
    seen.logs.push(notification.params.data);
    seen.changed();
  });
  await client.connect(transport);
  onCleanup(() => client.close());
  return { client, seen };
}

export interface V1Handle {
  readonly client: V1Client;
  readonly seen: Recorder;
}

/** The v1 SDK client, with the same canned answers as `connectV2Client`. */
export async function connectV1Client(transport: V1HttpTransport | V1StdioTransport): Promise<V1Handle> {
  const seen = recorder();
  const client = new V1Client(
    { name: 'e2e-features-v1', version: '1.0.0' },
    { capabilities: { sampling: {}, elicitation: {}, roots: { listChanged: true } } },
  );
  client.setRequestHandler(CreateMessageRequestSchema, async () => {
    seen.serverRequests.push('sampling/createMessage');
    seen.changed();
    return { role: 'assistant', model: 'e2e-model', content: { type: 'text', text: SAMPLED } };
  });
  client.setRequestHandler(ElicitRequestSchema, async (request) => {
    seen.serverRequests.push('elicitation/create');
    seen.changed();
    const message = 'message' in request.params ? request.params.message : '';
    return { action: 'accept', content: elicitAnswer(message) };
  });
  client.setRequestHandler(ListRootsRequestSchema, async () => {
    seen.serverRequests.push('roots/list');
    seen.changed();
    return { roots: [E2E_ROOT] };
  });
  client.setNotificationHandler(ResourceUpdatedNotificationSchema, async (notification) => {
    seen.updates.push(notification.params.uri);
    seen.changed();
  });
  client.setNotificationHandler(LoggingMessageNotificationSchema, async (notification) => {
    seen.logs.push(notification.params.data);
    seen.changed();
  });
  await client.connect(transport);
  onCleanup(() => client.close());
  return { client, seen };
}

export function v2Http(url: string): StreamableHTTPClientTransport {
  return new StreamableHTTPClientTransport(new URL(url));
}

export function v1Http(url: string): V1HttpTransport {
  return new V1HttpTransport(new URL(url));
}

export function v2Stdio(params: {
  command: string;
  args: string[];
  cwd: string;
  stderr: 'pipe';
}): StdioClientTransport {
  return new StdioClientTransport(params);
}

export function v1Stdio(params: { command: string; args: string[]; cwd: string; stderr: 'pipe' }): V1StdioTransport {
  return new V1StdioTransport(params);
}

/** The text of the first content block of a tool result or prompt message. */
export function textOf(value: unknown): string {
  const content =
    typeof value === 'object' && value !== null && 'content' in value ? (value as { content: unknown }).content : value;
  const block: unknown = Array.isArray(content) ? content[0] : content;
  if (typeof block === 'object' && block !== null && 'text' in block && typeof block.text === 'string') {
    return block.text;
  }
  throw new Error(`no text in ${JSON.stringify(value)}`);
}

/** What the feature suites drive, over either SDK generation. */
export interface FeatureClient {
  readonly label: string;
  readonly seen: Recorder;
  subscribe(uri: string): Promise<unknown>;
  unsubscribe(uri: string): Promise<unknown>;
  setLogLevel(level: 'debug' | 'info' | 'warning' | 'error'): Promise<unknown>;
  callTool(name: string, args?: Record<string, unknown>, meta?: Record<string, unknown>): Promise<unknown>;
  listPromptNames(): Promise<string[]>;
  getPrompt(name: string, args: Record<string, string>): Promise<unknown>;
  complete(
    ref: { type: 'ref/prompt'; name: string } | { type: 'ref/resource'; uri: string },
    argument: { name: string; value: string },
  ): Promise<string[]>;
  sendRootsListChanged(): Promise<void>;
  close(): Promise<void>;
}

export function fromV2(label: string, handle: V2Handle): FeatureClient {
  const { client } = handle;
  return {
    label,
    seen: handle.seen,
    subscribe: (uri) => client.subscribeResource({ uri }),
    unsubscribe: (uri) => client.unsubscribeResource({ uri }),
    setLogLevel: (level) => client.setLoggingLevel(level),
    callTool: (name, args = {}, meta) =>
      client.callTool({ name, arguments: args, ...(meta === undefined ? {} : { _meta: meta }) }),
    listPromptNames: async () => (await client.listPrompts()).prompts.map((prompt) => prompt.name),
    getPrompt: (name, args) => client.getPrompt({ name, arguments: args }),
    complete: async (ref, argument) => (await client.complete({ ref, argument })).completion.values,
    sendRootsListChanged: () => client.sendRootsListChanged(),
    close: () => client.close(),
  };
}

export function fromV1(label: string, handle: V1Handle): FeatureClient {
  const { client } = handle;
  return {
    label,
    seen: handle.seen,
    subscribe: (uri) => client.subscribeResource({ uri }),
    unsubscribe: (uri) => client.unsubscribeResource({ uri }),
    setLogLevel: (level) => client.setLoggingLevel(level),
    callTool: (name, args = {}, meta) =>
      client.callTool({ name, arguments: args, ...(meta === undefined ? {} : { _meta: meta }) }, undefined, {
        timeout: 20_000,
      }),
    listPromptNames: async () => (await client.listPrompts()).prompts.map((prompt) => prompt.name),
    getPrompt: (name, args) => client.getPrompt({ name, arguments: args }),
    complete: async (ref, argument) => (await client.complete({ ref, argument })).completion.values,
    sendRootsListChanged: () => client.sendRootsListChanged(),
    close: () => client.close(),
  };
}
