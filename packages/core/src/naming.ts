import { PortcullisError } from './errors.js';

/** The spec's tool-name charset and length (SEP-986): 1–128 of `[A-Za-z0-9_.-]`. */
export const TOOL_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;
/** Upstream names become name prefixes and URI scheme prefixes, so they are narrower than tool names. */
export const UPSTREAM_NAME_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;
export const DEFAULT_SEPARATOR = '__';

/**
 * The canonical form every name comparison uses (routing now, policy later), so that no
 * spelling (Unicode composition, letter case) reaches a different target than it appears to.
 */
export function canonicalName(name: string): string {
  return isCanonicalAscii(name) ? name : name.normalize('NFKC').toLowerCase();
}

/**
 * Whether `name` is ASCII without capitals: NFKC leaves every ASCII character as it is and
 * lower-casing then changes nothing, so such a name is its own canonical form (most tool names).
 */
function isCanonicalAscii(name: string): boolean {
  for (let i = 0; i < name.length; i++) {
    const code = name.charCodeAt(i);
    if (code > 0x7f || (code >= 0x41 && code <= 0x5a)) return false;
  }
  return true;
}

export interface NamespaceOptions {
  readonly separator: string;
}

/** `<upstream><separator><name>`, or the name itself for an upstream configured without a prefix. */
export function namespacedName(prefix: string | undefined, name: string, options: NamespaceOptions): string {
  return prefix === undefined ? name : `${prefix}${options.separator}${name}`;
}

export function isValidToolName(name: string): boolean {
  return TOOL_NAME_PATTERN.test(name);
}

export function assertValidUpstreamName(name: string): void {
  if (!UPSTREAM_NAME_PATTERN.test(name)) {
    throw new PortcullisError(
      'upstream.invalid_name',
      `upstream name "${name}" must match ${UPSTREAM_NAME_PATTERN.source} (lowercase letters, digits and "-", starting with a letter)`,
    );
  }
}

/**
 * Resource URIs of a prefixed upstream are rewritten as `<upstream>+<original-uri>`: the result is
 * still a valid absolute URI (`+` is allowed in a scheme), templates keep their variables, and the
 * original is recovered by stripping the prefix.
 */
export function namespacedUri(prefix: string | undefined, uri: string): string {
  return prefix === undefined ? uri : `${prefix}+${uri}`;
}

/** Splits a gateway URI into the prefix it names and the upstream's own URI, if it carries one. */
export function splitNamespacedUri(uri: string): { prefix: string; uri: string } | undefined {
  const plus = uri.indexOf('+');
  const colon = uri.indexOf(':');
  if (plus <= 0 || colon < 0 || plus > colon) return undefined;
  return { prefix: uri.slice(0, plus), uri: uri.slice(plus + 1) };
}
