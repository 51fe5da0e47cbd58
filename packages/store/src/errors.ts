import { describeError, PortcullisError } from '@portcullis/core';

/** SQLSTATE classes and Node socket errors that mean "the database cannot be reached right now". */
const UNAVAILABLE_SQLSTATE_PREFIXES = ['08', '57P', '53'];
const UNAVAILABLE_ERRNOS = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);
const UNAVAILABLE_MESSAGES = [
  /connection terminated/i,
  /timeout exceeded when trying to connect/i,
  /Connection terminated unexpectedly/i,
  /Client has encountered a connection error/i,
  /Cannot use a pool after calling end/i,
  /PGlite is closed/i,
];

/** True when an error from the database driver means the store is unreachable (as opposed to a bad query). */
export function isUnavailable(error: unknown): boolean {
  if (error instanceof PortcullisError) return error.code === 'store.unavailable';
  if (typeof error !== 'object' || error === null) return false;
  const { code, errors } = error as { code?: unknown; errors?: unknown };
  if (typeof code === 'string') {
    if (UNAVAILABLE_ERRNOS.has(code)) return true;
    if (/^[0-9A-Z]{5}$/.test(code) && UNAVAILABLE_SQLSTATE_PREFIXES.some((prefix) => code.startsWith(prefix))) {
      return true;
    }
  }
  // Node's AggregateError (happy eyeballs: one error per address tried).
  if (Array.isArray(errors) && errors.some(isUnavailable)) return true;
  const message = error instanceof Error ? error.message : '';
  return UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(message));
}

/**
 * The store's single error boundary: every database failure leaves the package as a
 * `PortcullisError` — `store.unavailable` when the database cannot be reached, `store.failed`
 * otherwise — with the driver's error as `cause`.
 */
export function toStoreError(error: unknown, operation: string): PortcullisError {
  if (error instanceof PortcullisError) return error;
  const code = isUnavailable(error) ? 'store.unavailable' : 'store.failed';
  const prefix = code === 'store.unavailable' ? 'session log store unavailable' : 'session log store error';
  return new PortcullisError(code, `${prefix} (${operation}): ${describeError(error)}`, { cause: error });
}
