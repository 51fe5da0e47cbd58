import { describe, expect, it } from 'vitest';
import { describeError, JsonRpcError, PortcullisError, RpcCode, toPortcullisError } from '../src/index.js';

describe('toPortcullisError', () => {
  it('wraps an Error, keeping it as cause and taking the given code', () => {
    const original = new TypeError('socket hang up');
    const wrapped = toPortcullisError(original, 'upstream.unavailable', 'connecting to fs');
    expect(wrapped).toBeInstanceOf(PortcullisError);
    expect(wrapped.code).toBe('upstream.unavailable');
    expect(wrapped.cause).toBe(original);
    expect(wrapped.message).toBe('connecting to fs: socket hang up');
    expect(wrapped.name).toBe('PortcullisError');
  });

  it('returns a PortcullisError unchanged (its own code wins)', () => {
    const original = new PortcullisError('config.invalid', 'bad config');
    expect(toPortcullisError(original, 'other.code')).toBe(original);
  });

  it('wraps non-Error values', () => {
    expect(toPortcullisError('plain string', 'x.y').message).toBe('plain string');
    expect(toPortcullisError({ reason: 'nope' }, 'x.y').message).toBe('{"reason":"nope"}');
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    const wrapped = toPortcullisError(circular, 'x.y');
    expect(wrapped.message).toBe('[object Object]');
    expect(wrapped.cause).toBe(circular);
  });
});

describe('describeError', () => {
  it('falls back to the name of an Error without a message', () => {
    expect(describeError(new RangeError())).toBe('RangeError');
  });
});

describe('JsonRpcError', () => {
  it('serialises code and message, and data only when present', () => {
    const bare = new JsonRpcError(RpcCode.MethodNotFound, 'Method not found');
    expect(bare.toJSON()).toEqual({ code: -32601, message: 'Method not found' });
    expect('data' in bare.toJSON()).toBe(false);
    const withData = new JsonRpcError(RpcCode.InvalidParams, 'bad', { field: 'name' });
    expect(withData.toJSON()).toEqual({ code: -32602, message: 'bad', data: { field: 'name' } });
    expect(JSON.parse(JSON.stringify(withData))).toEqual({ code: -32602, message: 'bad', data: { field: 'name' } });
  });

  it('keeps a cause and is an Error', () => {
    const cause = new Error('root');
    const error = new JsonRpcError(RpcCode.InternalError, 'wrapped', undefined, { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error.cause).toBe(cause);
    expect(error.name).toBe('JsonRpcError');
  });

  it('has the documented codes', () => {
    expect(RpcCode).toMatchObject({
      ParseError: -32700,
      InvalidRequest: -32600,
      InvalidParams: -32602,
      UpstreamUnavailable: -32010,
      MessageTooLarge: -32011,
    });
  });
});
