import { canonicalName } from '@portcullis/core';

/**
 * Name matching in the canonical form the gateway routes with (`canonicalName`: NFKC, case folded),
 * applied to the pattern and to the candidate alike, so that no spelling of a name (letter case,
 * fullwidth or other compatibility characters) escapes a rule written for it.
 *
 * Glob syntax: `*` matches any run of characters (including none, and including `/` in URIs),
 * `?` matches exactly one character; everything else is literal.
 */
export interface Glob {
  readonly source: string;
  test(canonicalCandidate: string): boolean;
}

export function compileGlob(pattern: string): Glob {
  const canonical = canonicalName(pattern);
  if (!/[*?]/.test(canonical)) {
    return { source: pattern, test: (candidate) => candidate === canonical };
  }
  if (canonical === '*') return { source: pattern, test: () => true };
  let body = '';
  for (const char of canonical) {
    if (char === '*') body += '[\\s\\S]*';
    else if (char === '?') body += '[\\s\\S]';
    else body += char.replace(/[\\^$.|+()[\]{}]/g, '\\$&');
  }
  const regex = new RegExp(`^${body}$`, 'u');
  return { source: pattern, test: (candidate) => regex.test(candidate) };
}

/** Any of several globs. */
export interface GlobSet {
  readonly sources: readonly string[];
  test(canonicalCandidate: string): boolean;
}

export function compileGlobs(patterns: string | readonly string[]): GlobSet {
  const list = typeof patterns === 'string' ? [patterns] : patterns;
  const compiled = list.map(compileGlob);
  const first = compiled[0];
  if (compiled.length === 1 && first) return { sources: list, test: first.test };
  return { sources: list, test: (candidate) => compiled.some((glob) => glob.test(candidate)) };
}

/**
 * The canonical form of a resource URI for matching: percent-encoded octets decoded (so `%65tc`
 * is `etc`), then `canonicalName`. An undecodable URI is matched as written.
 */
export function canonicalUri(uri: string): string {
  let decoded = uri;
  if (uri.includes('%')) {
    try {
      decoded = decodeURIComponent(uri);
    } catch {
      decoded = uri;
    }
  }
  return canonicalName(decoded);
}
