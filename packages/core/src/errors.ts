/**
 * Two error families cross this codebase:
 * - `JsonRpcError`: an error that is answered on the wire to an agent with a JSON-RPC code.
 * - `PortcullisError`: a local failure with a stable string `code` and the original `cause`.
 * Unknown errors are normalised once at each boundary with `toPortcullisError`.
 */

/** JSON-RPC 2.0 and MCP error codes the gateway answers with. */
export const RpcCode = {
  ParseError: -32700,
  InvalidRequest: -32600,
  MethodNotFound: -32601,
  InvalidParams: -32602,
  InternalError: -32603,
  /** MCP: resource not found. */
  ResourceNotFound: -32002,
  /** Implementation-defined server error range: the upstream a call was routed to is unavailable. */
  UpstreamUnavailable: -32010,
  /** Implementation-defined: a message larger than the configured limit. */
  MessageTooLarge: -32011,
  /** Implementation-defined: the policy denied a prompt, resource or completion request (tool calls get an `isError` result). */
  PolicyDenied: -32012,
  /** Implementation-defined: the session log cannot record, and `audit.onStoreFailure: closed` refuses calls. */
  AuditUnavailable: -32013,
} as const;

export class JsonRpcError extends Error {
  readonly code: number;
  readonly data: unknown;

  constructor(code: number, message: string, data?: unknown, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'JsonRpcError';
    this.code = code;
    this.data = data;
  }

  toJSON(): { code: number; message: string; data?: unknown } {
    return this.data === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, data: this.data };
  }
}

export class PortcullisError extends Error {
  /** Stable, documented identifier of the failure, e.g. `config.invalid` or `upstream.unavailable`. */
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PortcullisError';
    this.code = code;
  }
}

/** Wraps any thrown value as a `PortcullisError` with the given code, keeping the original as `cause`. */
export function toPortcullisError(error: unknown, code: string, context?: string): PortcullisError {
  if (error instanceof PortcullisError) return error;
  const detail = describeError(error);
  return new PortcullisError(code, context ? `${context}: ${detail}` : detail, { cause: error });
}

/** A one-line human description of any thrown value. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return error.message || error.name;
  if (typeof error === 'string') return error;
  try {
    return JSON.stringify(error);
  } catch {
    return String(error);
  }
}

/**
 * The answer to a request naming something the gateway does not expose. The forward stage and the
 * policy's `hide` both use it, so that a hidden target cannot be told apart from a missing one.
 */
export function unknownTargetError(method: string, params: Readonly<Record<string, unknown>>): JsonRpcError {
  switch (method) {
    case 'tools/call':
      return new JsonRpcError(RpcCode.InvalidParams, `Unknown tool: ${String(params.name)}`);
    case 'prompts/get':
      return new JsonRpcError(RpcCode.InvalidParams, `Unknown prompt: ${String(params.name)}`);
    case 'completion/complete':
      return new JsonRpcError(RpcCode.InvalidParams, 'Unknown completion reference');
    default:
      return new JsonRpcError(RpcCode.ResourceNotFound, `Resource not found: ${String(params.uri)}`, {
        uri: params.uri,
      });
  }
}
