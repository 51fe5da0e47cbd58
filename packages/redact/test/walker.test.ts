import { describe, expect, it } from 'vitest';
import { type RedactionSubject, Redactor } from '../src/index.js';

// The conformance fixture's shapes (packages/fixture/src/server.ts), with sensitive values put in.
const PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==';
const WAV = 'UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=';
const EMAIL = 'alice@example.com';
const CARD = '4111 1111 1111 1111';
const subject: RedactionSubject = { upstream: 'demo', kind: 'tool', name: 'any' };
const KEY = 'test-hash-key-0123456789';

function redactor(rules: unknown): Redactor {
  return new Redactor({ rules, hashKey: KEY });
}
const defaults = redactor([{ name: 'defaults', detectors: 'default' }]);

function b64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}
function unb64(text: string): string {
  return Buffer.from(text, 'base64').toString('utf8');
}
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

describe('tools/call results', () => {
  it('masks text content and leaves the input untouched', async () => {
    const input = deepFreeze({ content: [{ type: 'text', text: `Contact ${EMAIL}, card ${CARD}.` }] });
    const { value, summary } = await defaults.redactResult('tools/call', input, subject);
    expect(value.content[0]!.text).toBe('Contact [REDACTED:email], card [REDACTED:card].');
    expect(summary.total).toBe(2);
    expect(summary.byType).toEqual({ email: 1, card: 1 });
    expect(summary.entries).toEqual([
      { type: 'email', location: '$.content[0].text', action: 'mask', rule: 'defaults', count: 1 },
      { type: 'card', location: '$.content[0].text', action: 'mask', rule: 'defaults', count: 1 },
    ]);
    expect(Object.isFrozen(summary) && Object.isFrozen(summary.entries) && Object.isFrozen(summary.entries[0])).toBe(
      true,
    );
    expect(JSON.stringify(summary)).not.toContain('alice');
    expect(input.content[0]!.text).toContain(EMAIL);
  });

  it('returns the same object when nothing was found', async () => {
    const input = { content: [{ type: 'text', text: 'This is a simple text response for testing.' }] };
    const { value, summary } = await defaults.redactResult('tools/call', input, subject);
    expect(value).toBe(input);
    expect(summary.total).toBe(0);
  });

  it('passes image and audio content untouched, and keeps protocol fields', async () => {
    const input = {
      content: [
        { type: 'text', text: 'Multiple content types test:' },
        { type: 'image', data: PNG, mimeType: 'image/png' },
        { type: 'audio', data: WAV, mimeType: 'audio/wav' },
        {
          type: 'resource',
          resource: {
            uri: 'test://mixed-content-resource',
            mimeType: 'application/json',
            text: JSON.stringify({ owner: EMAIL }),
          },
        },
      ],
    };
    const { value } = await defaults.redactResult('tools/call', input, subject);
    expect(value.content[1]).toEqual(input.content[1]);
    expect(value.content[2]).toEqual(input.content[2]);
    expect(value.content[3]).toEqual({
      type: 'resource',
      resource: {
        uri: 'test://mixed-content-resource',
        mimeType: 'application/json',
        text: '{"owner":"[REDACTED:email]"}',
      },
    });
  });

  it('drops binary content when a rule says so', async () => {
    const r = redactor([{ name: 'no-binary', binary: 'drop' }]);
    const input = {
      content: [
        { type: 'image', data: PNG, mimeType: 'image/png' },
        { type: 'audio', data: WAV, mimeType: 'audio/wav' },
        { type: 'resource', resource: { uri: 'test://static-binary', mimeType: 'image/png', blob: PNG } },
      ],
    };
    const { value, summary } = await r.redactResult('tools/call', input, subject);
    expect(value.content).toEqual([
      { type: 'text', text: '[REDACTED:image]' },
      { type: 'text', text: '[REDACTED:audio]' },
      { type: 'resource', resource: { uri: 'test://static-binary', mimeType: 'text/plain', text: '[REDACTED:blob]' } },
    ]);
    expect(summary.byType).toEqual({ image: 1, audio: 1, blob: 1 });
  });

  it('redacts embedded resource text and text-typed blobs (decoded, re-encoded)', async () => {
    const input = {
      content: [
        {
          type: 'resource',
          resource: { uri: 'test://embedded-resource', mimeType: 'text/plain', text: `mail ${EMAIL}` },
        },
        {
          type: 'resource',
          resource: { uri: 'test://b', mimeType: 'text/csv', blob: b64(`name,email\nAlice,${EMAIL}\n`) },
        },
        { type: 'resource', resource: { uri: 'test://bin', mimeType: 'application/octet-stream', blob: b64(EMAIL) } },
      ],
    };
    const { value } = await defaults.redactResult('tools/call', input, subject);
    const [text, csv, bin] = value.content as { resource: { text?: string; blob?: string } }[];
    expect(text!.resource.text).toBe('mail [REDACTED:email]');
    expect(unb64(csv!.resource.blob!)).toBe('name,email\nAlice,[REDACTED:email]\n');
    expect(bin!.resource.blob).toBe(b64(EMAIL));
  });

  it('redacts resource_link name, title and description but never its uri', async () => {
    const input = {
      content: [
        {
          type: 'resource_link',
          uri: 'demo+test://users/alice@example.com',
          name: `profile of ${EMAIL}`,
          title: `Profile ${EMAIL}`,
          description: `Owner ${EMAIL}`,
          mimeType: 'text/plain',
        },
      ],
    };
    const { value } = await defaults.redactResult('tools/call', input, subject);
    expect(value.content[0]).toEqual({
      type: 'resource_link',
      uri: 'demo+test://users/alice@example.com',
      name: 'profile of [REDACTED:email]',
      title: 'Profile [REDACTED:email]',
      description: 'Owner [REDACTED:email]',
      mimeType: 'text/plain',
    });
  });

  it('redacts isError results and _meta', async () => {
    const input = {
      isError: true,
      content: [{ type: 'text', text: `failed for ${EMAIL}` }],
      _meta: { note: `by ${EMAIL}`, progressToken: 'alice@example.com' },
    };
    const { value } = await defaults.redactResult('tools/call', input, subject);
    expect(value).toEqual({
      isError: true,
      content: [{ type: 'text', text: 'failed for [REDACTED:email]' }],
      _meta: { note: 'by [REDACTED:email]', progressToken: 'alice@example.com' },
    });
  });

  it('redacts 2026-era input_required payloads, but never requestState', async () => {
    const state = `signed.${EMAIL}.state`;
    const input = {
      resultType: 'input_required',
      inputRequests: {
        sampling: {
          method: 'sampling/createMessage',
          params: {
            messages: [{ role: 'user', content: { type: 'text', text: `Summarise the account of ${EMAIL}` } }],
            systemPrompt: `You assist ${EMAIL}`,
            maxTokens: 100,
          },
        },
        response: {
          method: 'elicitation/create',
          params: {
            message: `Confirm the card ${CARD}`,
            requestedSchema: {
              type: 'object',
              properties: {
                email: { type: 'string', format: 'email', title: `Mail for ${EMAIL}`, default: EMAIL },
                status: { type: 'string', enum: ['active', 'inactive'] },
              },
              required: ['email'],
            },
          },
        },
        link: {
          method: 'elicitation/create',
          params: { mode: 'url', message: 'Open', url: `https://x.example/?mail=${EMAIL}` },
        },
        client_roots: { method: 'roots/list', params: {} },
      },
      requestState: state,
    };
    const { value, summary } = await defaults.redactResult('tools/call', input, subject);
    const requests = value.inputRequests as Record<string, { method: string; params: Record<string, unknown> }>;
    expect(value.requestState).toBe(state);
    expect(value.resultType).toBe('input_required');
    expect(requests.sampling!.params).toEqual({
      messages: [{ role: 'user', content: { type: 'text', text: 'Summarise the account of [REDACTED:email]' } }],
      systemPrompt: 'You assist [REDACTED:email]',
      maxTokens: 100,
    });
    const elicit = requests.response!.params as {
      message: string;
      requestedSchema: { properties: Record<string, Record<string, unknown>> };
    };
    expect(elicit.message).toBe('Confirm the card [REDACTED:card]');
    expect(elicit.requestedSchema.properties.email).toEqual({
      type: 'string',
      format: 'email',
      title: 'Mail for [REDACTED:email]',
      default: '[REDACTED:email]',
    });
    expect(elicit.requestedSchema.properties.status).toEqual({ type: 'string', enum: ['active', 'inactive'] });
    expect(requests.link!.params.url).toBe('https://x.example/?mail=[REDACTED:email]');
    expect(requests.client_roots).toEqual({ method: 'roots/list', params: {} });
    expect(summary.entries.map((e) => e.location)).toContain(
      '$.inputRequests.sampling.params.messages[0].content.text',
    );
  });
});

describe('structuredContent and outputSchema', () => {
  const outputSchema = {
    type: 'object',
    properties: {
      id: { type: 'integer' },
      email: { type: 'string', format: 'email' },
      card: { type: 'integer' },
      status: { type: 'string', enum: ['active', 'inactive'] },
      code: { type: 'string', maxLength: 6 },
      note: { type: 'string' },
      password: { type: 'string' },
      token: { type: 'string' },
      rows: { type: 'array', items: { $ref: '#/$defs/row' } },
    },
    required: ['id', 'email', 'password'],
    $defs: {
      row: { type: 'object', properties: { ssn: { type: 'string' }, name: { type: 'string' } }, required: ['ssn'] },
    },
  };
  const structured = {
    id: 7,
    email: EMAIL,
    card: 4111111111111111,
    status: 'active',
    code: 'ABC123',
    note: `call +1 415 555 0123 or mail ${EMAIL}`,
    password: 'hunter2',
    token: 'tkn-1',
    rows: [
      { ssn: '536-22-4567', name: 'A' },
      { ssn: '536-22-4568', name: 'B' },
    ],
  };

  it('keeps JSON types and satisfies the schema (detectors)', async () => {
    const { value } = await defaults.redactResult(
      'tools/call',
      { content: [{ type: 'text', text: JSON.stringify(structured) }], structuredContent: structured },
      subject,
      { outputSchema },
    );
    expect(value.structuredContent).toEqual({
      id: 7,
      email: 'redacted@redacted.invalid',
      card: 0,
      status: 'active',
      code: 'ABC123',
      note: 'call [REDACTED:phone] or mail [REDACTED:email]',
      password: '[REDACTED:secret-assignment]',
      token: '[REDACTED:secret-assignment]',
      rows: [
        { ssn: '[REDACTED:ssn]', name: 'A' },
        { ssn: '[REDACTED:ssn]', name: 'B' },
      ],
    });
    const text = value.content[0]!.text as string;
    for (const secret of [EMAIL, '4111111111111111', 'hunter2', '536-22-4567', '555 0123'])
      expect(text).not.toContain(secret);
  });

  it('applies every action through field rules; drop removes only optional fields', async () => {
    const r = redactor([
      {
        name: 'fields',
        fields: [
          { path: '$.rows[*].ssn', action: 'drop' },
          { path: '$.rows[*].name', action: 'hash', label: 'name' },
          { path: '$.card', action: 'partial' },
          { path: '$.code', action: 'partial' },
          { path: '$.status', action: 'mask' },
          { path: '$.password', action: 'drop' },
          { path: '$.token', action: 'drop' },
          { path: '$.id', action: 'hash' },
        ],
      },
    ]);
    const { value, summary } = await r.redactResult(
      'tools/call',
      { content: [], structuredContent: structured },
      subject,
      {
        outputSchema,
      },
    );
    const out = value.structuredContent as Record<string, unknown>;
    expect(out.rows).toEqual([
      { ssn: '[REDACTED:ssn]', name: expect.stringMatching(/^\[HASH:name:[0-9a-f]{16}\]$/) },
      { ssn: '[REDACTED:ssn]', name: expect.stringMatching(/^\[HASH:name:[0-9a-f]{16}\]$/) },
    ]);
    expect(out.card).toBe(1111);
    // 6 characters are too few to show 4: masked, then cut to the schema's maxLength.
    expect(out.code).toBe('[REDAC');
    expect(out.status).toBe('active');
    expect(out.password).toBe('[REDACTED:password]');
    expect('token' in out).toBe(false);
    expect(typeof out.id).toBe('number');
    expect(summary.entries.find((e) => e.location === '$.structuredContent.token')?.action).toBe('drop');
    expect(summary.entries.find((e) => e.location === '$.structuredContent.password')?.action).toBe('mask');
  });

  it('drops fields anywhere without a schema, and in text that parses as JSON', async () => {
    const r = redactor([{ name: 'f', fields: [{ path: '$..password', action: 'drop' }, { path: "$['x-y']" }] }]);
    const doc = { user: { name: 'n', password: 'p' }, password: 'q', 'x-y': 'v', list: [{ password: 'r' }] };
    const { value } = await r.redactResult(
      'tools/call',
      { content: [{ type: 'text', text: JSON.stringify(doc, null, 2) }], structuredContent: doc },
      subject,
    );
    const expected = { user: { name: 'n' }, 'x-y': '[REDACTED:x-y]', list: [{}] };
    expect(value.structuredContent).toEqual(expected);
    expect(JSON.parse(value.content[0]!.text as string)).toEqual(expected);
    expect(value.content[0]!.text).toContain('\n  ');
  });

  it('hash correlates equal values and differs for different ones', async () => {
    const r = redactor([{ name: 'h', detectors: [{ id: 'email', action: 'hash' }] }]);
    const { value } = await r.redactResult(
      'tools/call',
      { content: [{ type: 'text', text: `${EMAIL} ${EMAIL} bob@example.com` }] },
      subject,
    );
    const [a, b, c] = (value.content[0]!.text as string).split(' ');
    expect(a).toMatch(/^\[HASH:email:[0-9a-f]{16}\]$/);
    expect(a).toBe(b);
    expect(a).not.toBe(c);
    const other = new Redactor({
      rules: [{ name: 'h', detectors: [{ id: 'email', action: 'hash' }] }],
      hashKey: 'another-key-0123456789',
    });
    const again = await other.redactResult('tools/call', { content: [{ type: 'text', text: EMAIL }] }, subject);
    expect(again.value.content[0]!.text).not.toBe(a);
  });

  it('partial keeps the last four', async () => {
    const r = redactor([{ name: 'p', detectors: ['card', 'email'], action: 'partial' }]);
    const { value } = await r.redactResult(
      'tools/call',
      { content: [{ type: 'text', text: `${CARD} ${EMAIL}` }] },
      subject,
    );
    expect(value.content[0]!.text).toBe('[REDACTED:card:****1111] [REDACTED:email:****ecom]');
  });

  it('drop removes the match from text', async () => {
    const r = redactor([{ name: 'd', detectors: ['email'], action: 'drop' }]);
    const { value } = await r.redactResult(
      'tools/call',
      { content: [{ type: 'text', text: `mail <${EMAIL}>` }] },
      subject,
    );
    expect(value.content[0]!.text).toBe('mail <>');
  });

  it('renames object keys a detector matches', async () => {
    const { value } = await defaults.redactResult(
      'tools/call',
      { content: [], structuredContent: { [EMAIL]: 1, 'x@example.org': 2 } },
      subject,
    );
    expect(value.structuredContent).toEqual({ '[REDACTED:email]': 1, '[REDACTED:email]#2': 2 });
  });
});

describe('other results and messages', () => {
  it('resources/read contents: text, JSON text, text blobs; binary blobs untouched', async () => {
    const r = redactor([{ name: 'r', detectors: 'default', fields: [{ path: '$.data' }] }]);
    const input = {
      contents: [
        { uri: 'test://static-text', mimeType: 'text/plain', text: `owner ${EMAIL}` },
        {
          uri: 'test://template/1/data',
          mimeType: 'application/json',
          text: JSON.stringify({ id: '1', data: 'Data for ID: 1' }),
        },
        { uri: 'test://static-binary', mimeType: 'image/png', blob: PNG },
        { uri: 'test://notes', mimeType: 'text/markdown', blob: b64(`# Notes\n${CARD}`) },
      ],
    };
    const { value } = await r.redactResult('resources/read', input, {
      upstream: 'demo',
      kind: 'resource',
      name: 'test://x',
    });
    expect(value.contents[0]!.text).toBe('owner [REDACTED:email]');
    expect(JSON.parse(value.contents[1]!.text!)).toEqual({ id: '1', data: '[REDACTED:data]' });
    expect(value.contents[2]).toEqual(input.contents[2]);
    expect(unb64(value.contents[3]!.blob!)).toBe('# Notes\n[REDACTED:card]');
    expect(value.contents.map((c) => c.uri)).toEqual(input.contents.map((c) => c.uri));
  });

  it('prompts/get messages: text, images, embedded resources', async () => {
    const input = {
      description: `Prompt for ${EMAIL}`,
      messages: [
        { role: 'user', content: { type: 'image', data: PNG, mimeType: 'image/png' } },
        {
          role: 'user',
          content: {
            type: 'resource',
            resource: { uri: 'test://r', mimeType: 'text/plain', text: `Embedded ${CARD}` },
          },
        },
        { role: 'assistant', content: { type: 'text', text: `Prompt with arguments: arg1='${EMAIL}'` } },
      ],
    };
    const { value } = await defaults.redactResult('prompts/get', input, {
      upstream: 'demo',
      kind: 'prompt',
      name: 'p',
    });
    expect(value.description).toBe('Prompt for [REDACTED:email]');
    expect(value.messages[0]).toEqual(input.messages[0]);
    expect(value.messages[1]!.content).toEqual({
      type: 'resource',
      resource: { uri: 'test://r', mimeType: 'text/plain', text: 'Embedded [REDACTED:card]' },
    });
    expect(value.messages[2]).toEqual({
      role: 'assistant',
      content: { type: 'text', text: "Prompt with arguments: arg1='[REDACTED:email]'" },
    });
  });

  it('completion values', async () => {
    const { value } = await defaults.redactResult(
      'completion/complete',
      { completion: { values: [EMAIL, 'paris'], hasMore: false } },
      subject,
    );
    expect(value.completion).toEqual({ values: ['[REDACTED:email]', 'paris'], hasMore: false });
  });

  it('logging notifications: data as a JSON document, logger too', async () => {
    const r = redactor([{ name: 'l', detectors: 'default', fields: [{ path: '$..ip' }] }]);
    const params = {
      level: 'info',
      logger: `svc ${EMAIL}`,
      data: { msg: `login ${EMAIL}`, ip: '10.0.0.1', card: 4111111111111111, list: [CARD] },
    };
    const { value, summary } = await r.redactOutbound('notifications/message', params, { upstream: 'demo' });
    expect(value).toEqual({
      level: 'info',
      logger: 'svc [REDACTED:email]',
      data: { msg: 'login [REDACTED:email]', ip: '[REDACTED:ip]', card: 0, list: ['[REDACTED:card]'] },
    });
    expect(summary.total).toBe(5);
    const text = await r.redactOutbound(
      'notifications/message',
      { level: 'error', data: `failed ${EMAIL}` },
      { upstream: 'demo' },
    );
    expect(text.value.data).toBe('failed [REDACTED:email]');
  });

  it('progress notifications: message, never the token', async () => {
    const { value } = await defaults.redactOutbound(
      'notifications/progress',
      { progressToken: EMAIL, progress: 50, total: 100, message: `processing ${EMAIL}` },
      { upstream: 'demo' },
    );
    expect(value).toEqual({ progressToken: EMAIL, progress: 50, total: 100, message: 'processing [REDACTED:email]' });
  });

  it('sampling and elicitation requests towards the agent', async () => {
    const sampling = await defaults.redactOutbound(
      'sampling/createMessage',
      {
        messages: [
          { role: 'user', content: { type: 'text', text: `about ${EMAIL}` } },
          {
            role: 'user',
            content: [
              { type: 'text', text: CARD },
              { type: 'image', data: PNG, mimeType: 'image/png' },
            ],
          },
        ],
        systemPrompt: `for ${EMAIL}`,
        modelPreferences: { hints: [{ name: 'claude' }], intelligencePriority: 0.5 },
        maxTokens: 100,
      },
      { upstream: 'demo' },
    );
    expect(sampling.value.messages).toEqual([
      { role: 'user', content: { type: 'text', text: 'about [REDACTED:email]' } },
      {
        role: 'user',
        content: [
          { type: 'text', text: '[REDACTED:card]' },
          { type: 'image', data: PNG, mimeType: 'image/png' },
        ],
      },
    ]);
    expect(sampling.value.systemPrompt).toBe('for [REDACTED:email]');
    const elicitation = await defaults.redactOutbound(
      'elicitation/create',
      {
        message: `Is ${EMAIL} yours?`,
        requestedSchema: { type: 'object', properties: { ok: { type: 'boolean', description: `for ${EMAIL}` } } },
      },
      { upstream: 'demo' },
    );
    expect(elicitation.value).toEqual({
      message: 'Is [REDACTED:email] yours?',
      requestedSchema: { type: 'object', properties: { ok: { type: 'boolean', description: 'for [REDACTED:email]' } } },
    });
  });

  it('redactArgs: the log copy only, when a rule asks for it', async () => {
    const r = redactor([
      { name: 'args', detectors: ['email'], fields: [{ path: '$.password', action: 'mask' }], args: true },
    ]);
    const args = deepFreeze({ to: EMAIL, password: 'hunter2', n: 1 });
    const { value, summary } = await r.redactArgs(args, subject);
    expect(value).toEqual({ to: '[REDACTED:email]', password: '[REDACTED:password]', n: 1 });
    expect(args.to).toBe(EMAIL);
    expect(summary.total).toBe(2);
    const without = await defaults.redactArgs(args, subject);
    expect(without.value).toBe(args);
  });

  it('custom detectors with a validator and a capture group', async () => {
    const r = redactor([
      {
        name: 'c',
        custom: [
          { id: 'employee-id', pattern: 'EMP-([0-9]{6})', action: 'mask' },
          { id: 'luhn-ref', pattern: 'REF[0-9]{16}', validator: 'luhn' },
          { id: 'ticket', pattern: 'ticket #?([a-z]{3}-[0-9]+)', caseInsensitive: true, action: 'hash' },
        ],
      },
    ]);
    const { value, summary } = await r.redactResult(
      'tools/call',
      { content: [{ type: 'text', text: 'EMP-123456 REF4111111111111111 REF4111111111111112 Ticket #ABC-42' }] },
      subject,
    );
    expect(value.content[0]!.text).toMatch(
      /^EMP-\[REDACTED:employee-id\] \[REDACTED:luhn-ref\] REF4111111111111112 Ticket #\[HASH:ticket:[0-9a-f]{16}\]$/,
    );
    expect(summary.byType).toEqual({ 'employee-id': 1, 'luhn-ref': 1, ticket: 1 });
  });
});
