import { JsonRpcError, RpcCode } from '@portcullis/core';
import { describe, expect, it } from 'vitest';
import { CursorCodec } from '../src/index.js';

function readError(codec: CursorCodec, cursor: string, list: string, version: number): JsonRpcError {
  try {
    codec.read(cursor, list, version);
  } catch (error) {
    if (error instanceof JsonRpcError) return error;
    throw error;
  }
  throw new Error('expected the cursor to be refused');
}

describe('CursorCodec', () => {
  const codec = new CursorCodec();

  it('round-trips list, version and offset', () => {
    const cursor = codec.mint('tools', 3, 200);
    expect(codec.read(cursor, 'tools', 3)).toBe(200);
    expect(codec.read(codec.mint('prompts', 1, 0), 'prompts', 1)).toBe(0);
  });

  it('is opaque to the agent (no raw list name or offset in clear)', () => {
    expect(codec.mint('tools', 3, 200)).not.toContain('tools');
  });

  it('refuses a forged signature', () => {
    const [body] = codec.mint('tools', 1, 100).split('.');
    const error = readError(codec, `${body}.AAAAAAAAAAAAAAAAAAAAAA`, 'tools', 1);
    expect(error.code).toBe(RpcCode.InvalidParams);
  });

  it('refuses a cursor minted by another gateway (another key)', () => {
    const other = new CursorCodec();
    expect(readError(codec, other.mint('tools', 1, 100), 'tools', 1).code).toBe(-32602);
  });

  it('refuses a tampered body even with the original signature', () => {
    const [, signature] = codec.mint('tools', 1, 100).split('.');
    const forgedBody = Buffer.from(JSON.stringify(['tools', 1, 0])).toString('base64url');
    expect(readError(codec, `${forgedBody}.${signature}`, 'tools', 1).code).toBe(-32602);
  });

  it('refuses a cursor of another list', () => {
    const error = readError(codec, codec.mint('prompts', 1, 100), 'tools', 1);
    expect(error.code).toBe(-32602);
    expect(error.message).toContain('prompts');
  });

  it('refuses a stale cursor', () => {
    const error = readError(codec, codec.mint('tools', 1, 100), 'tools', 2);
    expect(error.code).toBe(-32602);
    expect(error.message).toMatch(/stale/i);
  });

  it.each(['', 'garbage', 'a.b.c', '.', 'abc.'])('refuses the malformed cursor %j', (cursor) => {
    expect(readError(codec, cursor, 'tools', 1).code).toBe(-32602);
  });

  it('refuses a validly signed cursor with a bad offset (same key)', () => {
    const key = Buffer.alloc(32, 7);
    const minting = new CursorCodec(key);
    const reading = new CursorCodec(key);
    expect(reading.read(minting.mint('tools', 1, 5), 'tools', 1)).toBe(5);
    expect(readError(reading, minting.mint('tools', 1, -1), 'tools', 1).code).toBe(-32602);
    expect(readError(reading, minting.mint('tools', 1, 1.5), 'tools', 1).code).toBe(-32602);
  });
});
