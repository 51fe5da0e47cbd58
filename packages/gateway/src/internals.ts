import type { Implementation, ServerCapabilities } from '@modelcontextprotocol/server';
import type { RequestContext, RouteTarget, RpcParams, RpcResult } from '@portcullis/core';
import type { Logger } from 'pino';
import type { Catalog } from './catalog.js';
import type { ForwardDeps } from './forward.js';
import type { SessionObserver } from './gateway.js';
import type { OutboundFilter } from './hooks.js';
import type { UpstreamInteractions } from './interactions.js';
import type { UpstreamProvider } from './provider.js';
import type { SessionScope } from './scope.js';
import type { AgentSession } from './session.js';

/** What an agent session uses of the gateway that owns it. */
export interface GatewayInternals {
  readonly serverInfo: Implementation;
  readonly logger: Logger;
  readonly catalog: Catalog;
  readonly provider: UpstreamProvider;
  readonly forwardDeps: ForwardDeps;
  readonly interactions: UpstreamInteractions;
  /** Redaction of what upstreams send towards agents outside results (see `OutboundFilter`). */
  readonly outbound: OutboundFilter | undefined;
  readonly subscriptions: {
    add(target: RouteTarget): Promise<void>;
    remove(target: RouteTarget): Promise<void>;
  };
  capabilities(): ServerCapabilities;
  instructions(): string | undefined;
  prefixOf(upstream: string): string | undefined;
  pipeline(ctx: RequestContext, forward: (ctx: RequestContext) => Promise<RpcResult>): Promise<RpcResult>;
  onUpstreamNotification(upstream: string, method: string, params: RpcParams): void;
  sessionClosed(session: AgentSession): void;
  /** A notification was handed to the agent of `sessionId` (for the gateway's observer). */
  observeNotification?(sessionId: string, method: string, params: RpcParams | undefined): void;
  /** Session lifecycle and traffic observer (the session log), if any. */
  readonly observer?: SessionObserver | undefined;
  /** The scope of an upstream session key, created on first use. */
  scopeFor(key: string): SessionScope;
  /** Disposes a scope whose key's dedicated connections are being released. */
  releaseScope(key: string): void;
}
