/** What a `ListenTracker` needs: reference-counted upstream subscriptions for a set of gateway URIs. */
export interface ListenHost {
  /** Subscribes upstream for `uris` until the returned function is called (idempotent). */
  listen(uris: readonly string[]): () => void;
}

type RequestId = string | number;

/**
 * Follows the `subscriptions/listen` requests of one agent connection (a 2026-era stdio
 * connection, or one HTTP request) so that the gateway subscribes upstream for the resource URIs
 * they name, and unsubscribes when the stream ends.
 *
 * Why it watches raw messages: the SDK serves `subscriptions/listen` in its entry (the listen router
 * of `createMcpHandler` / `serveStdio`), never reaching the server instance, and offers no hook that
 * reveals a stream's filter — its `ServerEventBus.subscribe` receives only a listener. So the front
 * shows every inbound message to a tracker: a listen request opens a subscription set keyed by its
 * id; `notifications/cancelled` for that id (stdio) or the end of the HTTP response closes it, and
 * `close()` releases everything left when the connection ends. A listen request the SDK then
 * refuses (bad envelope, subscription limit) holds its upstream subscription until that stream
 * ends: for HTTP immediately, for stdio until the connection closes.
 */
export class ListenTracker {
  private readonly open = new Map<RequestId, () => void>();

  constructor(private readonly host: ListenHost) {}

  /** Looks at one inbound JSON-RPC message; returns true when it opened a listen subscription. */
  observe(message: unknown): boolean {
    if (!isRecord(message)) return false;
    if (message.method === 'notifications/cancelled') {
      const id = isRecord(message.params) ? message.params.requestId : undefined;
      if (typeof id === 'string' || typeof id === 'number') this.release(id);
      return false;
    }
    if (message.method !== 'subscriptions/listen') return false;
    const id = message.id;
    if (typeof id !== 'string' && typeof id !== 'number') return false;
    const uris = resourceSubscriptionsOf(message.params);
    if (uris.length === 0) return false;
    this.release(id);
    this.open.set(id, this.host.listen(uris));
    return true;
  }

  get openCount(): number {
    return this.open.size;
  }

  /** Ends every subscription still open (the connection or response ended). */
  close(): void {
    for (const release of this.open.values()) release();
    this.open.clear();
  }

  private release(id: RequestId): void {
    const release = this.open.get(id);
    if (!release) return;
    this.open.delete(id);
    release();
  }
}

/** The resource URIs a `subscriptions/listen` request's filter names (`params.notifications.resourceSubscriptions`). */
export function resourceSubscriptionsOf(params: unknown): string[] {
  const filter = isRecord(params) ? params.notifications : undefined;
  const uris = isRecord(filter) ? filter.resourceSubscriptions : undefined;
  if (!Array.isArray(uris)) return [];
  return [...new Set(uris.filter((uri): uri is string => typeof uri === 'string' && uri !== ''))];
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
