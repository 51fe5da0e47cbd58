import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectV2Client, type V2Handle, v2Http, v2Stdio } from './support/clients.js';
import { type HttpGateway, startHttpGateway, stdioFixture, stdioGatewayParams } from './support/gateway.js';
import { cleanupAll, GATEWAY_BIN, spawnProcess, tempDir, writeConfig } from './support/processes.js';

/**
 * Policy and redaction end to end: real SDK agents through the real `portcullis` process, with the
 * conformance fixture as the upstream `fx` (tools `fx__…`, resources `fx+test://…`).
 */

const POLICY = `
version: 1
default:
  action: allow
rules:
  - name: no-errors
    match: { tool: fx__test_error_handling }
    action: deny
    reason: error handling is switched off here
  - name: hide-images
    match: { tool: test_image_content }
    action: hide
  - name: hide-image-prompt
    match: { prompt: test_prompt_with_image }
    action: hide
  - name: hide-binary
    match: { resource: "test://static-binary" }
    action: hide
  - name: no-etc
    match: { tool: fixture_echo }
    when: has(args.path) && args.path.startsWith("/etc")
    action: deny
    reason: writing under /etc is not allowed
  - name: contractors-no-simple
    match: { tool: test_simple_text, groups: contractors }
    action: deny
    reason: contractors may not call test_simple_text
  - name: audit-slow
    mode: audit
    match: { tool: fixture_slow }
    action: deny
  - name: approve-adds
    match: { tool: fixture_add_tool }
    action: approve
    approve: { reviewers: { groups: [sre] }, mode: retry }
  - name: confirm-progress
    match: { tool: test_tool_with_progress }
    action: confirm
    confirm: { otherwise: deny }
  - name: no-argument-prompts
    match: { prompt: test_prompt_with_arguments }
    action: deny
    reason: prompts with arguments are switched off
redact:
  - name: secrets
    detectors: [card, github-token]
  - name: mail
    detectors: [email]
    except: { groups: [support] }
  - name: customers
    match: { tools: [fixture_echo] }
    fields:
      - { path: $.customer, action: hash, label: customer }
  - name: fixture-words
    match: { resources: ["fx+test://static-text"], prompts: [test_simple_prompt], tools: [test_logging_tool] }
    custom:
      - { id: fixture-word, pattern: "static text|simple prompt|Diagnostic" }
  - name: interaction-words
    match: { tools: [test_sampling, fixture_slow] }
    custom:
      - { id: secret-word, pattern: "swordfish|step [0-9]+" }
`;

const TOKEN = `ghp_${'a1B2c3D4e5'.repeat(3)}123456`;

function policyFile(text: string): string {
  const file = join(tempDir(), 'policy.yaml');
  writeFileSync(file, text);
  return file;
}

interface ToolResult {
  readonly content?: readonly { type: string; text?: string }[];
  readonly structuredContent?: Record<string, unknown>;
  readonly isError?: boolean;
}

async function call(handle: V2Handle, name: string, args: Record<string, unknown> = {}): Promise<ToolResult> {
  return (await handle.client.callTool({ name, arguments: args })) as ToolResult;
}

function text(result: ToolResult): string {
  return result.content?.[0]?.text ?? '';
}

/** The JSON-RPC error a request is refused with: `{code, message}`. */
async function refusal(request: Promise<unknown>): Promise<{ code: unknown; message: string }> {
  try {
    await request;
  } catch (error) {
    const { code, message } = error as { code?: unknown; message?: string };
    return { code, message: message ?? '' };
  }
  throw new Error('expected the request to be refused');
}

afterAll(async () => {
  await cleanupAll();
});

describe('policy over HTTP (anonymous identity)', () => {
  let gateway: HttpGateway;
  let agent: V2Handle;

  beforeAll(async () => {
    gateway = await startHttpGateway({
      upstreams: { fx: stdioFixture('fx') },
      extra: { policy: { file: policyFile(POLICY) }, redaction: { hashKey: 'an e2e hash key of enough bytes' } },
    });
    agent = await connectV2Client(v2Http(gateway.mcpUrl), 'legacy');
  });

  it('allows what no rule stops, and answers a denied tool call with an error result the model can read', async () => {
    expect(text(await call(agent, 'fx__test_simple_text'))).toContain('simple text');
    const denied = await call(agent, 'fx__test_error_handling');
    expect(denied.isError).toBe(true);
    expect(text(denied)).toBe('error handling is switched off here');
  });

  it('decides on the arguments with a CEL condition', async () => {
    const denied = await call(agent, 'fx__fixture_echo', { path: '/etc/passwd' });
    expect(denied).toMatchObject({ isError: true });
    expect(text(denied)).toBe('writing under /etc is not allowed');
    const allowed = await call(agent, 'fx__fixture_echo', { path: '/tmp/notes' });
    expect(allowed.isError).toBeFalsy();
    expect(allowed.structuredContent).toEqual({ path: '/tmp/notes' });
  });

  it('hides a tool: absent from the list, and refused exactly like a tool that does not exist', async () => {
    const names = (await agent.client.listTools()).tools.map((tool) => tool.name);
    expect(names).toContain('fx__test_simple_text');
    expect(names).not.toContain('fx__test_image_content');
    const hidden = await refusal(call(agent, 'fx__test_image_content'));
    const missing = await refusal(call(agent, 'fx__no_such_tool'));
    expect(hidden.code).toBe(missing.code);
    expect(hidden.message.replace('test_image_content', 'X')).toBe(missing.message.replace('no_such_tool', 'X'));
    expect(hidden.message).toMatch(/Unknown tool: fx__test_image_content/);
  });

  it('hides a prompt and a resource the same way', async () => {
    const prompts = (await agent.client.listPrompts()).prompts.map((prompt) => prompt.name);
    expect(prompts).toContain('fx__test_simple_prompt');
    expect(prompts).not.toContain('fx__test_prompt_with_image');
    const hiddenPrompt = await refusal(agent.client.getPrompt({ name: 'fx__test_prompt_with_image' }));
    const missingPrompt = await refusal(agent.client.getPrompt({ name: 'fx__no_such_prompt' }));
    expect(hiddenPrompt.code).toBe(missingPrompt.code);
    expect(hiddenPrompt.message).toMatch(/Unknown prompt: fx__test_prompt_with_image/);

    const resources = (await agent.client.listResources()).resources.map((resource) => resource.uri);
    expect(resources).toContain('fx+test://static-text');
    expect(resources).not.toContain('fx+test://static-binary');
    const hiddenResource = await refusal(agent.client.readResource({ uri: 'fx+test://static-binary' }));
    const missingResource = await refusal(agent.client.readResource({ uri: 'fx+test://no-such-resource' }));
    expect(hiddenResource.code).toBe(missingResource.code);
    expect(hiddenResource.message).toMatch(/Resource not found: fx\+test:\/\/static-binary/);
  });

  it('denies a prompt with a JSON-RPC error carrying the reason', async () => {
    const denied = await refusal(
      agent.client.getPrompt({ name: 'fx__test_prompt_with_arguments', arguments: { arg1: 'a', arg2: 'b' } }),
    );
    expect(denied.code).toBe(-32012);
    expect(denied.message).toMatch(/prompts with arguments are switched off/);
  });

  it('does not enforce an audit rule', async () => {
    const result = await call(agent, 'fx__fixture_slow', { ms: 10, steps: 1 });
    expect(result.isError).toBeFalsy();
    expect(text(result)).toMatch(/fixture_slow finished/);
  });

  it('holds approve rules (retry mode: answered at once) and asks the user for confirm rules', async () => {
    const held = await call(agent, 'fx__fixture_add_tool');
    expect(held.isError).toBe(true);
    expect(text(held)).toMatch(
      /^approval apr_[0-9a-f]+ required: policy rule "approve-adds" holds this call for group sre/,
    );
    // This agent answers elicitation without confirming, so the call is refused as declined.
    const confirmed = await call(agent, 'fx__test_tool_with_progress');
    expect(confirmed.isError).toBe(true);
    expect(text(confirmed)).toMatch(/the user declined the confirmation of fx__test_tool_with_progress/);
    expect(text(confirmed)).toMatch(/policy rule "confirm-progress"/);
  });

  it('redacts secrets and e-mail addresses a tool returns, in text and structuredContent', async () => {
    const result = await call(agent, 'fx__fixture_echo', {
      note: `mail ada@example.com, token ${TOKEN}, card 4111 1111 1111 1111`,
    });
    const serialised = JSON.stringify(result);
    expect(serialised).not.toContain('ada@example.com');
    expect(serialised).not.toContain(TOKEN);
    expect(serialised).not.toContain('4111 1111 1111 1111');
    expect(result.structuredContent).toEqual({
      note: 'mail [REDACTED:email], token [REDACTED:github-token], card [REDACTED:card]',
    });
    expect(JSON.parse(text(result))).toEqual(result.structuredContent);
  });

  it('hashes a field with the configured key: equal values correlate, different ones do not', async () => {
    const first = (await call(agent, 'fx__fixture_echo', { customer: 'ACME-0001' })).structuredContent;
    const again = (await call(agent, 'fx__fixture_echo', { customer: 'ACME-0001' })).structuredContent;
    const other = (await call(agent, 'fx__fixture_echo', { customer: 'ACME-0002' })).structuredContent;
    expect(first?.customer).toMatch(/^\[HASH:customer:[0-9a-f]{16}\]$/);
    expect(again?.customer).toBe(first?.customer);
    expect(other?.customer).not.toBe(first?.customer);
    expect(JSON.stringify(first)).not.toContain('ACME-0001');
  });

  it('redacts a resource read and a prompt', async () => {
    const read = await agent.client.readResource({ uri: 'fx+test://static-text' });
    expect(read.contents[0]).toMatchObject({
      uri: 'fx+test://static-text',
      text: 'This is the content of the [REDACTED:fixture-word] resource.',
    });
    const prompt = await agent.client.getPrompt({ name: 'fx__test_simple_prompt' });
    expect(prompt.messages[0]?.content).toEqual({
      type: 'text',
      text: 'This is a [REDACTED:fixture-word] for testing.',
    });
  });

  it('redacts a logging message relayed from the upstream', async () => {
    await agent.client.setLoggingLevel('debug');
    const before = agent.seen.logs.length;
    expect(text(await call(agent, 'fx__test_logging_tool'))).toBe('Logging evaluated');
    await agent.seen.until(() => agent.seen.logs.length > before, 5_000, 'the log message');
    const logs = JSON.stringify(agent.seen.logs.slice(before));
    expect(logs).toContain('[REDACTED:fixture-word] trace logging activated');
    expect(logs).not.toContain('Diagnostic');
  });

  it('redacts progress messages and the sampling request an upstream sends to the agent during a call', async () => {
    const sampled: unknown[] = [];
    const client = new Client({ name: 'e2e-sampling', version: '1.0.0' }, { capabilities: { sampling: {} } });
    client.setRequestHandler('sampling/createMessage', async (request) => {
      sampled.push(request.params);
      return { role: 'assistant', model: 'e2e-model', content: { type: 'text', text: 'fine' } };
    });
    await client.connect(v2Http(gateway.mcpUrl));
    try {
      const sampling = (await client.callTool({
        name: 'fx__test_sampling',
        arguments: { prompt: 'the password is swordfish' },
      })) as ToolResult;
      expect(text(sampling)).toBe('LLM response: fine');
      expect(JSON.stringify(sampled)).toContain('the password is [REDACTED:secret-word]');
      expect(JSON.stringify(sampled)).not.toContain('swordfish');

      const progress: unknown[] = [];
      await client.callTool(
        { name: 'fx__fixture_slow', arguments: { ms: 40, steps: 2 } },
        { onprogress: (update) => progress.push(update) },
      );
      expect(progress.length).toBeGreaterThan(0);
      expect(JSON.stringify(progress)).toContain('[REDACTED:secret-word] of 2');
      expect(JSON.stringify(progress)).not.toMatch(/step \d/);
    } finally {
      await client.close();
    }
  });
});

describe('policy over stdio (identity from --as/--groups)', () => {
  const file = policyFile(POLICY);
  const connect = (subject: string, groups: string): Promise<V2Handle> => {
    const params = stdioGatewayParams({ upstreams: { fx: stdioFixture('fx') }, extra: { policy: { file } } });
    return connectV2Client(
      v2Stdio({ ...params, args: [...params.args, '--as', subject, '--groups', groups] }),
      'legacy',
    );
  };

  it('applies a rule to one group and not to another', async () => {
    const [contractor, developer] = await Promise.all([connect('bob', 'contractors'), connect('alice', 'dev')]);
    const denied = await call(contractor, 'fx__test_simple_text');
    expect(denied).toMatchObject({ isError: true });
    expect(text(denied)).toBe('contractors may not call test_simple_text');
    expect(text(await call(developer, 'fx__test_simple_text'))).toContain('simple text');
  }, 60_000);

  it('shows e-mail addresses to a group excepted from the redaction rule, but never the token', async () => {
    const [support, developer] = await Promise.all([connect('sam', 'support'), connect('alice', 'dev')]);
    const args = { note: `ada@example.com ${TOKEN}` };
    expect((await call(support, 'fx__fixture_echo', args)).structuredContent).toEqual({
      note: 'ada@example.com [REDACTED:github-token]',
    });
    expect((await call(developer, 'fx__fixture_echo', args)).structuredContent).toEqual({
      note: '[REDACTED:email] [REDACTED:github-token]',
    });
  }, 60_000);
});

describe('policy file changes while running', () => {
  const ALLOW = 'default: { action: allow }\n';
  const DENY_ECHO = `${ALLOW}rules:\n  - name: no-echo\n    match: { tool: fixture_echo }\n    action: deny\n    reason: echo is off now\n`;

  it('follows a new version without a restart, and keeps the old one when the new one is bad', async () => {
    const dir = tempDir();
    const file = join(dir, 'policy.yaml');
    const logFile = join(dir, 'gateway.log');
    writeFileSync(file, ALLOW);
    const gateway = await startHttpGateway({
      upstreams: { fx: stdioFixture('fx') },
      extra: { policy: { file }, logging: { level: 'info', file: logFile } },
    });
    const agent = await connectV2Client(v2Http(gateway.mcpUrl), 'legacy');
    expect((await call(agent, 'fx__fixture_echo', { a: 1 })).isError).toBeFalsy();

    writeFileSync(file, DENY_ECHO);
    await until(async () => (await call(agent, 'fx__fixture_echo', { a: 1 })).isError === true, 'the new version');
    expect(text(await call(agent, 'fx__fixture_echo', { a: 1 }))).toBe('echo is off now');

    writeFileSync(file, `${DENY_ECHO}  - name: broken\n    action: maybe\n`);
    await until(async () => readLog(logFile).includes('new policy version rejected'), 'the rejection in the log');
    expect(readLog(logFile)).toMatch(/policy\.yaml:\d+:\d+ at rules\[1\]\.action/);
    expect(text(await call(agent, 'fx__fixture_echo', { a: 1 }))).toBe('echo is off now');

    writeFileSync(file, ALLOW);
    await until(async () => (await call(agent, 'fx__fixture_echo', { a: 1 })).isError !== true, 'the fixed version');
  }, 60_000);

  it('refuses to start with a bad policy file, naming the file, the place and the reason', async () => {
    const file = policyFile(
      'rules:\n  - name: ok\n    action: allow\n  - name: bad\n    when: args.path.startsWith(\n    action: deny\n',
    );
    const config = writeConfig({
      auth: { anonymous: true },
      policy: { file },
      upstreams: { fx: stdioFixture('fx') },
    });
    const proc = spawnProcess(process.execPath, [GATEWAY_BIN, 'serve', '--config', config, '--port', '0']);
    expect(await proc.exited).toBe(2);
    expect(proc.stderr()).toContain('invalid policy');
    expect(proc.stderr()).toMatch(/policy\.yaml:5:\d+ at rules\[1\]\.when: CEL syntax error in rule "bad"/);
  });
});

describe('HTTP without anonymous access', () => {
  it('refuses every MCP request with 401 when auth.anonymous is false (the default)', async () => {
    const gateway = await startHttpGateway({ upstreams: { fx: stdioFixture('fx') }, auth: {} });
    const response = await fetch(gateway.mcpUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'initialize',
        params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'e2e', version: '1' } },
      }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toMatch(/Bearer/);
    expect(await response.text()).toMatch(/anonymous access is disabled/);
    expect((await fetch(`${gateway.baseUrl}/sse`)).status).toBe(401);
    expect((await fetch(`${gateway.baseUrl}/healthz`)).status).toBe(200);
  }, 60_000);
});

function readLog(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}

async function until(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
