import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { JsonRpcError, RpcCode } from '@portcullis/core';

/**
 * Opaque pagination cursors minted by the gateway over its merged lists. A cursor binds the list
 * kind, the catalog version it was minted against and the offset, signed with a key that lives
 * only in this process: a forged cursor fails the signature, a stale one names an older version.
 */
export class CursorCodec {
  private readonly key: Buffer;

  constructor(key: Buffer = randomBytes(32)) {
    this.key = key;
  }

  mint(list: string, version: number | string, offset: number): string {
    const body = Buffer.from(JSON.stringify([list, version, offset])).toString('base64url');
    return `${body}.${this.sign(body)}`;
  }

  /** The offset a cursor points at; -32602 when it is malformed, forged, for another list, or stale. */
  read(cursor: string, list: string, version: number | string): number {
    const [body, signature, ...rest] = cursor.split('.');
    if (!body || !signature || rest.length > 0 || !this.verify(body, signature)) {
      throw new JsonRpcError(RpcCode.InvalidParams, 'Invalid cursor: it was not issued by this gateway');
    }
    const decoded: unknown = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
    if (!Array.isArray(decoded) || decoded.length !== 3) {
      throw new JsonRpcError(RpcCode.InvalidParams, 'Invalid cursor');
    }
    const [cursorList, cursorVersion, offset] = decoded as [unknown, unknown, unknown];
    if (cursorList !== list)
      throw new JsonRpcError(RpcCode.InvalidParams, `Invalid cursor: it belongs to ${String(cursorList)}`);
    if (cursorVersion !== version) {
      throw new JsonRpcError(
        RpcCode.InvalidParams,
        'Stale cursor: the list has changed since it was issued; list again from the start',
      );
    }
    if (typeof offset !== 'number' || !Number.isInteger(offset) || offset < 0) {
      throw new JsonRpcError(RpcCode.InvalidParams, 'Invalid cursor');
    }
    return offset;
  }

  private sign(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url').slice(0, 22);
  }

  private verify(body: string, signature: string): boolean {
    const expected = Buffer.from(this.sign(body));
    const given = Buffer.from(signature);
    return expected.length === given.length && timingSafeEqual(expected, given);
  }
}
