import { ProtocolError } from '@modelcontextprotocol/server';
import { describeError, JsonRpcError, PortcullisError, RpcCode } from '@portcullis/core';
import type { Logger } from 'pino';

/**
 * The wire boundary towards the agent: every failure becomes a `ProtocolError` the SDK answers
 * with. Local failures keep their message when it is meant for the agent (an upstream being
 * unavailable); anything unexpected is logged here and answered without internals.
 */
export function toWireError(error: unknown, logger: Logger): ProtocolError {
  if (error instanceof ProtocolError) return error;
  if (error instanceof JsonRpcError) return new ProtocolError(error.code, error.message, error.data);
  if (error instanceof PortcullisError) {
    if (error.code === 'upstream.unavailable' || error.code === 'upstream.unknown') {
      return new ProtocolError(RpcCode.UpstreamUnavailable, error.message);
    }
    logger.error({ code: error.code, err: describeError(error) }, 'request failed');
    return new ProtocolError(RpcCode.InternalError, error.message);
  }
  logger.error({ err: error }, 'unexpected error while handling a request');
  return new ProtocolError(RpcCode.InternalError, 'Internal error in the gateway');
}
