import { ProtocolError, SdkError, SdkErrorCode } from '@modelcontextprotocol/client';
import { describeError, JsonRpcError, PortcullisError, RpcCode } from '@portcullis/core';

/**
 * Error codes this package raises (all `PortcullisError`):
 * - `upstream.unavailable`: the upstream cannot be reached (connect failed, transport closed, HTTP failure).
 * - `upstream.timeout`: the upstream did not answer within the request timeout.
 * - `upstream.cancelled`: the caller aborted the request.
 * - `upstream.invalid_result`: the upstream answered with something that is not a valid result.
 * - `upstream.unknown`: no upstream of that name is configured.
 * - `upstream.disabled`: the upstream is configured but disabled.
 */
export const UpstreamErrorCode = {
  Unavailable: 'upstream.unavailable',
  Timeout: 'upstream.timeout',
  Cancelled: 'upstream.cancelled',
  InvalidResult: 'upstream.invalid_result',
  Unknown: 'upstream.unknown',
  Disabled: 'upstream.disabled',
} as const;

export function unavailableError(upstream: string, reason: unknown): PortcullisError {
  if (reason instanceof PortcullisError && reason.code === UpstreamErrorCode.Unavailable) return reason;
  return new PortcullisError(
    UpstreamErrorCode.Unavailable,
    `upstream "${upstream}" is unavailable: ${describeError(reason)}`,
    { cause: reason },
  );
}

/**
 * The one place an error thrown by the SDK client is classified: an error the upstream answered
 * becomes a `JsonRpcError` (it crosses the wire to the agent unchanged); everything else becomes a
 * `PortcullisError` naming the upstream.
 */
export function normaliseUpstreamError(
  upstream: string,
  error: unknown,
  signal?: AbortSignal,
): JsonRpcError | PortcullisError {
  if (error instanceof JsonRpcError || error instanceof PortcullisError) return error;
  if (error instanceof ProtocolError) {
    return new JsonRpcError(error.code, error.message, error.data, { cause: error });
  }
  if (signal?.aborted) {
    return new PortcullisError(UpstreamErrorCode.Cancelled, `request to upstream "${upstream}" was cancelled`, {
      cause: error,
    });
  }
  if (error instanceof SdkError) {
    switch (error.code) {
      case SdkErrorCode.RequestTimeout:
        return new PortcullisError(UpstreamErrorCode.Timeout, `upstream "${upstream}" did not answer in time`, {
          cause: error,
        });
      case SdkErrorCode.MethodNotSupportedByProtocolVersion:
        // The method does not exist in the era this upstream speaks: to the agent it is not found.
        return new JsonRpcError(RpcCode.MethodNotFound, error.message, undefined, { cause: error });
      case SdkErrorCode.InvalidResult:
      case SdkErrorCode.UnsupportedResultType:
        return new PortcullisError(
          UpstreamErrorCode.InvalidResult,
          `upstream "${upstream}" sent an invalid result: ${error.message}`,
          { cause: error },
        );
      default:
        return unavailableError(upstream, error);
    }
  }
  return unavailableError(upstream, error);
}
