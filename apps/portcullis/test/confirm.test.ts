import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type HttpGateway, startHttpGateway, stdioFixture } from './support/gateway.js';
import { cleanupAll, onCleanup, tempDir } from './support/processes.js';

/**
 * The `confirm` action end to end: real v2 SDK agents (2025 era, and 2026 era pinned to
 * 2026-07-28, whose SDK answers `input_required` with its elicitation handler) through a real
 * `portcullis serve` and the fixture upstream.
 */

interface ToolResult {
  readonly content?: readonly { type: string; text?: string }[];
  readonly isError?: boolean;
}

const text = (result: ToolResult): string => result.content?.[0]?.text ?? '';

const POLICY = `
version: 1
default: { action: allow }
rules:
  - name: ask-echo
    match: { tool: fixture_echo }
    when: "!has(args.held)"
    action: confirm
    confirm: { otherwise: deny }
  - name: ask-or-hold
    match: { tool: fixture_echo }
    when: has(args.held)
    action: confirm
    confirm: { otherwise: approve }
    approve: { reviewers: { groups: [sre] }, mode: retry, timeout: 2m }
`;

type Era = 'legacy' | 'modern';

interface Agent {
  readonly client: Client;
  /** What the next elicitation answers: accept with true, or decline. */
  answer: 'accept' | 'decline';
  readonly messages: string[];
}

async function agent(url: string, era: Era, elicits: boolean): Promise<Agent> {
  const client = new Client(
    { name: `e2e-confirm-${era}`, version: '1.0.0' },
    {
      capabilities: elicits ? { elicitation: { form: {} } } : {},
      ...(era === 'modern' ? { versionNegotiation: { mode: { pin: '2026-07-28' } } } : {}),
    },
  );
  const handle: Agent = { client, answer: 'accept', messages: [] };
  if (elicits) {
    client.setRequestHandler('elicitation/create', async (request) => {
      handle.messages.push(request.params.message);
      return handle.answer === 'accept' ? { action: 'accept', content: { confirm: true } } : { action: 'decline' };
    });
  }
  await client.connect(new StreamableHTTPClientTransport(new URL(url)));
  onCleanup(() => client.close());
  return handle;
}

async function echo(handle: Agent, args: Record<string, unknown>): Promise<ToolResult> {
  return (await handle.client.callTool({ name: 'fx__fixture_echo', arguments: args })) as ToolResult;
}

let gateway: HttpGateway;

beforeAll(async () => {
  const file = join(tempDir(), 'policy.yaml');
  writeFileSync(file, POLICY);
  gateway = await startHttpGateway({ upstreams: { fx: stdioFixture('fx') }, extra: { policy: { file } } });
}, 60_000);

afterAll(async () => {
  await cleanupAll();
});

describe.each<Era>(['legacy', 'modern'])('confirm by elicitation (%s era)', (era) => {
  let handle: Agent;
  beforeAll(async () => {
    handle = await agent(gateway.mcpUrl, era, true);
  });

  it('forwards the call when the user accepts, after asking with the tool and its arguments', async () => {
    handle.answer = 'accept';
    const result = await echo(handle, { path: `/tmp/${era}-yes` });
    expect(result.isError).toBeFalsy();
    expect(text(result)).toContain(`/tmp/${era}-yes`);
    expect(handle.messages.at(-1)).toBe(`allow fx__fixture_echo with path="/tmp/${era}-yes"?`);
  });

  it('answers a tool error saying the user declined', async () => {
    handle.answer = 'decline';
    const asked = handle.messages.length;
    const result = await echo(handle, { path: `/tmp/${era}-no` });
    expect(result.isError).toBe(true);
    expect(text(result)).toContain('the user declined the confirmation of fx__fixture_echo');
    expect(handle.messages.length).toBe(asked + 1);
  });
});

describe('an agent without elicitation', () => {
  it('is denied under otherwise: deny, and held under otherwise: approve', async () => {
    const handle = await agent(gateway.mcpUrl, 'legacy', false);
    const denied = await echo(handle, { path: '/tmp/nobody-asks' });
    expect(denied.isError).toBe(true);
    expect(text(denied)).toContain('confirmation is impossible');
    const held = await echo(handle, { path: '/tmp/held', held: true });
    expect(held.isError).toBe(true);
    expect(text(held)).toMatch(/approval apr_\w+ required/);
  });
});
