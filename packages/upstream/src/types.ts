import type { UpstreamSpec } from '@portcullis/config';
import type { ProtocolEra, RpcParams, RpcResult } from '@portcullis/core';

export type UpstreamStatus = 'connecting' | 'connected' | 'failing' | 'disabled' | 'closed';

export interface ProgressUpdate {
  readonly progress: number;
  readonly total?: number;
  readonly message?: string;
}

export interface UpstreamRequestOptions {
  /** Aborting sends `notifications/cancelled` upstream with the upstream's own request id. */
  readonly signal?: AbortSignal;
  /** When given, a fresh progress token is minted for the upstream and its updates are delivered here. */
  readonly onProgress?: (progress: ProgressUpdate) => void;
  /** Overrides the spec's request timeout; progress resets it. */
  readonly timeoutMs?: number;
  /**
   * Extra HTTP headers for this one request (Streamable HTTP upstreams only; e.g. the SEP-2243
   * `Mcp-Param-*` headers of a `tools/call`). Ignored by stdio and legacy SSE connections.
   */
  readonly headers?: Readonly<Record<string, string>>;
}

/**
 * A request the upstream sends towards the agent (sampling, elicitation, roots). The handler
 * answers with the agent's result or throws a `JsonRpcError`.
 */
export type ServerRequestHandler = (
  method: string,
  params: RpcParams,
  options: { signal: AbortSignal },
) => Promise<RpcResult>;

export interface ConnectionOptions {
  /** Capabilities declared to the upstream (only what the agent behind this connection declared). */
  readonly capabilities?: Readonly<Record<string, unknown>>;
  readonly onServerRequest?: ServerRequestHandler;
}

/** One live client connection to one upstream MCP server, reconnecting on its own. */
export interface UpstreamConnection {
  readonly spec: UpstreamSpec;
  readonly status: UpstreamStatus;
  readonly lastError: string | undefined;
  /** Known once connected. */
  readonly era: ProtocolEra | undefined;
  readonly protocolVersion: string | undefined;
  readonly serverCapabilities: Readonly<Record<string, unknown>> | undefined;
  readonly serverInfo: { readonly name: string; readonly version: string } | undefined;
  readonly instructions: string | undefined;

  /** Resolves once connected; rejects with `PortcullisError('upstream.unavailable')` if the attempt fails. */
  ready(): Promise<void>;
  /**
   * Sends a request and resolves with the raw result exactly as the upstream sent it (a 2026-era
   * `input_required` result is returned, never fulfilled here). Rejects with `JsonRpcError` for an
   * error the upstream answered, and with `PortcullisError('upstream.unavailable')` when the upstream
   * cannot be reached.
   */
  request(method: string, params: RpcParams | undefined, options?: UpstreamRequestOptions): Promise<RpcResult>;
  notify(method: string, params?: RpcParams): Promise<void>;
  /**
   * Asks the upstream for `notifications/resources/updated` about `uri`, in either era (2025:
   * `resources/subscribe`; 2026: the URI joins the connection's `subscriptions/listen` filter). The
   * subscription survives reconnects until `unsubscribeResource`.
   */
  subscribeResource(uri: string): Promise<void>;
  unsubscribeResource(uri: string): Promise<void>;
  /** Notifications from the upstream (list_changed, resources/updated, logging messages, ...), in both eras. */
  onNotification(listener: (method: string, params: RpcParams) => void): () => void;
  onStatus(listener: (status: UpstreamStatus) => void): () => void;
  /** Stops reconnecting, closes the transport and kills a stdio child with its whole process group. */
  close(): Promise<void>;
}

/** Where upstream definitions come from: the config file now, the store later. */
export interface UpstreamRegistry {
  list(): readonly UpstreamSpec[];
  onChange(listener: (specs: readonly UpstreamSpec[]) => void): () => void;
}

export interface UpstreamStatusReport {
  readonly name: string;
  readonly transport: UpstreamSpec['transport'];
  readonly status: UpstreamStatus;
  readonly era: ProtocolEra | undefined;
  readonly protocolVersion: string | undefined;
  readonly lastError: string | undefined;
  readonly sessionConnections: number;
}
