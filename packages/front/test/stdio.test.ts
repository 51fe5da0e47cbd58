import { PassThrough } from 'node:stream';
import type { JSONRPCMessage } from '@modelcontextprotocol/server';
import { afterEach, describe, expect, it } from 'vitest';
import { GatewayStdioTransport } from '../src/index.js';

interface Harness {
  readonly input: PassThrough;
  readonly output: PassThrough;
  readonly transport: GatewayStdioTransport;
  readonly received: JSONRPCMessage[];
  /** Lines written to the output so far, parsed. */
  readonly written: unknown[];
  readonly events: string[];
}

const harnesses: Harness[] = [];
afterEach(async () => {
  for (const harness of harnesses.splice(0)) {
    await harness.transport.close();
    harness.input.destroy();
    harness.output.destroy();
  }
});

async function start(maxMessageBytes = 1024): Promise<Harness> {
  const input = new PassThrough();
  const output = new PassThrough();
  const events: string[] = [];
  const transport = new GatewayStdioTransport(input, output, maxMessageBytes, () => events.push('ended'));
  const received: JSONRPCMessage[] = [];
  const written: unknown[] = [];
  let pending = '';
  output.on('data', (chunk: Buffer) => {
    pending += chunk.toString('utf8');
    let newline = pending.indexOf('\n');
    while (newline !== -1) {
      written.push(JSON.parse(pending.slice(0, newline)));
      pending = pending.slice(newline + 1);
      newline = pending.indexOf('\n');
    }
  });
  transport.onmessage = (message) => received.push(message);
  transport.onclose = () => events.push('onclose');
  await transport.start();
  const harness = { input, output, transport, received, written, events };
  harnesses.push(harness);
  return harness;
}

/** Lets the streams deliver what was written. */
function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 10));
}

const ping = (id: number): string => JSON.stringify({ jsonrpc: '2.0', id, method: 'ping' });

describe('GatewayStdioTransport framing', () => {
  it('reassembles a message split across chunks', async () => {
    const h = await start();
    const line = `${ping(1)}\n`;
    for (const part of [line.slice(0, 5), line.slice(5, 20), line.slice(20)]) h.input.write(part);
    await settle();
    expect(h.received).toEqual([{ jsonrpc: '2.0', id: 1, method: 'ping' }]);
    expect(h.written).toEqual([]);
  });

  it('splits several messages in one chunk and keeps a trailing partial one', async () => {
    const h = await start();
    const third = ping(3);
    h.input.write(`${ping(1)}\n${ping(2)}\n${third.slice(0, 10)}`);
    await settle();
    expect(h.received.map((message) => (message as { id: number }).id)).toEqual([1, 2]);
    h.input.write(`${third.slice(10)}\n`);
    await settle();
    expect(h.received.map((message) => (message as { id: number }).id)).toEqual([1, 2, 3]);
  });

  it('decodes a multi-byte character split between chunks', async () => {
    const h = await start();
    const bytes = Buffer.from(
      `${JSON.stringify({ jsonrpc: '2.0', method: 'notifications/message', params: { text: 'café ☃' } })}\n`,
    );
    const cut = bytes.indexOf(Buffer.from('☃')) + 1;
    h.input.write(bytes.subarray(0, cut));
    h.input.write(bytes.subarray(cut));
    await settle();
    expect(h.received).toEqual([{ jsonrpc: '2.0', method: 'notifications/message', params: { text: 'café ☃' } }]);
  });

  it('accepts CRLF line endings and ignores blank lines', async () => {
    const h = await start();
    h.input.write(`${ping(1)}\r\n\r\n\n${ping(2)}\r`);
    h.input.write('\n');
    await settle();
    expect(h.received.map((message) => (message as { id: number }).id)).toEqual([1, 2]);
    expect(h.written).toEqual([]);
  });

  it('writes sent messages as one line each', async () => {
    const h = await start();
    const chunks: string[] = [];
    h.output.on('data', (chunk: Buffer) => chunks.push(chunk.toString('utf8')));
    await h.transport.send({ jsonrpc: '2.0', id: 7, result: { text: 'a\nb' } });
    await settle();
    expect(chunks.join('')).toBe('{"jsonrpc":"2.0","id":7,"result":{"text":"a\\nb"}}\n');
  });
});

describe('GatewayStdioTransport bad input', () => {
  it('answers malformed JSON with -32700 and id null, and keeps going', async () => {
    const h = await start();
    h.input.write('{"jsonrpc":"2.0","id":1,"method":\n');
    h.input.write(`${ping(2)}\n`);
    await settle();
    expect(h.written).toEqual([{ jsonrpc: '2.0', id: null, error: { code: -32700, message: expect.any(String) } }]);
    expect(h.received).toEqual([{ jsonrpc: '2.0', id: 2, method: 'ping' }]);
  });

  it('answers a JSON value that is not JSON-RPC with -32600, echoing its id when it has one', async () => {
    const h = await start();
    h.input.write(`${JSON.stringify({ id: 9, method: 'ping' })}\n`);
    h.input.write(`${JSON.stringify({ jsonrpc: '2.0', id: 'abc', method: 42 })}\n`);
    h.input.write(`${JSON.stringify({ hello: 'world' })}\n`);
    h.input.write('42\n');
    h.input.write(`${ping(3)}\n`);
    await settle();
    expect(h.written).toEqual([
      { jsonrpc: '2.0', id: 9, error: { code: -32600, message: expect.any(String) } },
      { jsonrpc: '2.0', id: 'abc', error: { code: -32600, message: expect.any(String) } },
      { jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.any(String) } },
      { jsonrpc: '2.0', id: null, error: { code: -32600, message: expect.any(String) } },
    ]);
    expect(h.received).toEqual([{ jsonrpc: '2.0', id: 3, method: 'ping' }]);
  });

  it('answers an oversized line with -32011 and still handles the next line', async () => {
    const h = await start(200);
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { blob: 'x'.repeat(500) } });
    // Spread over several chunks, with the next message in the same chunk as the newline.
    h.input.write(big.slice(0, 150));
    h.input.write(big.slice(150, 400));
    h.input.write(`${big.slice(400)}\n${ping(2)}\n`);
    await settle();
    expect(h.written).toEqual([
      { jsonrpc: '2.0', id: null, error: { code: -32011, message: expect.stringContaining('200 bytes') } },
    ]);
    expect(h.received).toEqual([{ jsonrpc: '2.0', id: 2, method: 'ping' }]);
  });

  it('accepts a line of exactly the limit', async () => {
    const line = ping(1);
    const h = await start(Buffer.byteLength(line));
    h.input.write(`${line}\n`);
    await settle();
    expect(h.received).toHaveLength(1);
    expect(h.written).toEqual([]);
  });
});

describe('GatewayStdioTransport lifecycle', () => {
  it('closes when the input ends, once, and refuses to send afterwards', async () => {
    const h = await start();
    h.input.end(`${ping(1)}\n`);
    await settle();
    expect(h.received).toHaveLength(1);
    expect(h.events).toEqual(['onclose', 'ended']);
    h.input.destroy();
    await settle();
    await h.transport.close();
    expect(h.events).toEqual(['onclose', 'ended']);
    await expect(h.transport.send({ jsonrpc: '2.0', id: 1, result: {} })).rejects.toThrow(/closed/);
  });

  it('ignores input that arrives after close', async () => {
    const h = await start();
    await h.transport.close();
    h.input.write(`${ping(1)}\n`);
    await settle();
    expect(h.received).toEqual([]);
  });
});
