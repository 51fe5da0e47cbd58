/** Who is calling. Rules see this object; the session log records it. */
export interface Identity {
  /** Stable subject: an API key's name, an OIDC `sub`, or the configured stdio identity. */
  readonly subject: string;
  readonly groups: readonly string[];
  readonly authMethod: 'anonymous' | 'config' | 'api-key' | 'oidc';
  readonly claims: Readonly<Record<string, unknown>>;
  /**
   * May manage the gateway through the admin API (upstreams, apply): an admin API key, or groups
   * that meet `auth.adminGroups`. Absent: not an admin.
   */
  readonly admin?: boolean;
}

/** Deeply frozen, so one object serves every anonymous request. */
const ANONYMOUS: Identity = Object.freeze({
  subject: 'anonymous',
  groups: Object.freeze([]),
  authMethod: 'anonymous',
  claims: Object.freeze({}),
});

export function anonymousIdentity(): Identity {
  return ANONYMOUS;
}

export function configuredIdentity(subject: string, groups: readonly string[]): Identity {
  return Object.freeze({ subject, groups: Object.freeze([...groups]), authMethod: 'config', claims: {} });
}
