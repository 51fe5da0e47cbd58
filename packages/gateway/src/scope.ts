import { JsonRpcError, RpcCode, type RpcParams, type RpcResult } from '@portcullis/core';
import type { UpstreamConnection } from '@portcullis/upstream';
import { listKindsForNotification } from './catalog.js';
import type { SessionCatalog } from './session-catalog.js';
import { rewriteOutboundParams } from './uris.js';

/** What a scope needs of the agent sessions that use it (implemented by `AgentSession`). */
export interface ScopeMember {
  readonly isClosed: boolean;
  /** Whether this session can receive notifications outside a request (2025-era, or 2026-era stdio). */
  readonly hasOwnStream: boolean;
  hasCallOn(connection: UpstreamConnection): boolean;
  deliverDuringCall(connection: UpstreamConnection, method: string, params: RpcParams): boolean;
  notify(method: string, params?: RpcParams): Promise<void>;
  /** A notification from `upstream` outside any call, passed through the gateway's outbound filter. */
  relayNotification(upstream: string, method: string, params: RpcParams): Promise<void>;
  relayServerRequest(
    upstream: string,
    connection: UpstreamConnection,
    method: string,
    params: RpcParams,
    options: { signal: AbortSignal },
  ): Promise<RpcResult>;
}

/** What a scope needs of the gateway. */
export interface ScopeHost {
  prefixOf(upstream: string): string | undefined;
  /** Resource updates and anything not scoped to a session (handled as for primaries). */
  onUpstreamNotification(upstream: string, method: string, params: RpcParams): void;
  /** A push for a 2026-era agent's call parked on `connection`; `undefined` when there is none. */
  relayPush(
    connection: UpstreamConnection,
    method: string,
    params: RpcParams,
    signal: AbortSignal,
  ): Promise<RpcResult> | undefined;
  /** A list change for agents without a stream of their own (2026-era HTTP `subscriptions/listen`). */
  announceListChanged(kind: 'tools' | 'prompts' | 'resources'): void;
}

/**
 * Everything that belongs to one upstream session key — a 2025-era session's id, or the identity
 * 2026-era HTTP requests are keyed by: its dedicated (`per-session`) connections, its catalog view,
 * and the agent sessions currently using them. Notifications and server-to-client requests of a
 * dedicated connection are handled here once per connection (not once per agent session, which for
 * 2026-era HTTP is one per request), and reach only this scope's sessions.
 */
export class SessionScope {
  private readonly members = new Set<ScopeMember>();
  private readonly connections = new Map<UpstreamConnection, () => void>();

  constructor(
    readonly key: string,
    readonly catalog: SessionCatalog,
    private readonly host: ScopeHost,
  ) {}

  join(member: ScopeMember): void {
    this.members.add(member);
  }

  leave(member: ScopeMember): void {
    this.members.delete(member);
  }

  get memberCount(): number {
    return this.members.size;
  }

  dedicatedConnections(): UpstreamConnection[] {
    return [...this.connections.keys()];
  }

  /** Takes a newly acquired dedicated connection under this scope (idempotent). */
  adopt(upstream: string, connection: UpstreamConnection): void {
    if (this.connections.has(connection)) return;
    const stop = connection.onNotification((method, params) =>
      this.onNotification(upstream, connection, method, params),
    );
    this.connections.set(connection, stop);
    this.catalog.attach(upstream, connection);
  }

  /** A request the upstream sends on a dedicated connection: answered by the session with a call in flight there. */
  relayServerRequest(
    upstream: string,
    connection: UpstreamConnection,
    method: string,
    params: RpcParams,
    options: { signal: AbortSignal },
  ): Promise<RpcResult> {
    // A 2026-era agent's call takes the push as an input_required round (it cannot receive pushes).
    const parked = this.host.relayPush(connection, method, params, options.signal);
    if (parked) return parked;
    let target: ScopeMember | undefined;
    for (const member of this.members) if (!member.isClosed && member.hasCallOn(connection)) target = member;
    if (!target) for (const member of this.members) if (!member.isClosed && member.hasOwnStream) target = member;
    if (!target) {
      return Promise.reject(
        new JsonRpcError(RpcCode.MethodNotFound, `${method} cannot be relayed: no agent request is in flight`),
      );
    }
    return target.relayServerRequest(upstream, connection, method, params, options);
  }

  dispose(): void {
    for (const stop of this.connections.values()) stop();
    this.connections.clear();
    this.members.clear();
    this.catalog.dispose();
  }

  private onNotification(upstream: string, connection: UpstreamConnection, method: string, params: RpcParams): void {
    const kinds = listKindsForNotification(method);
    if (kinds.length > 0) {
      // Only this scope's view changed: the shared catalog and other sessions are untouched.
      this.catalog.invalidate(upstream, kinds);
      const kind = kinds[0] === 'resourceTemplates' ? 'resources' : (kinds[0] as 'tools' | 'prompts' | 'resources');
      let streams = 0;
      for (const member of this.members) {
        if (member.isClosed || !member.hasOwnStream) continue;
        streams++;
        void member.notify(method);
      }
      if (streams === 0) this.host.announceListChanged(kind);
      return;
    }
    if (method === 'notifications/resources/updated' || method.endsWith('/list_changed')) {
      this.host.onUpstreamNotification(upstream, method, params);
      return;
    }
    const outbound = rewriteOutboundParams(method, params, this.host.prefixOf(upstream));
    let delivered = false;
    for (const member of this.members) delivered = member.deliverDuringCall(connection, method, outbound) || delivered;
    if (delivered) return;
    for (const member of this.members)
      if (!member.isClosed && member.hasOwnStream) void member.relayNotification(upstream, method, outbound);
  }
}
