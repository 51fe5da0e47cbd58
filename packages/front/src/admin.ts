import type { IncomingMessage, ServerResponse } from 'node:http';
import { describeError, type Identity } from '@portcullis/core';
import type { Logger } from 'pino';
import { readChunks } from './http-util.js';

/** Where the admin API is served. */
export const ADMIN_PREFIX = '/admin/v1/';

/**
 * A refusal the admin API answers with `status` and `{ error: { reason, message } }`. The
 * application throws it from its handlers (unknown → 404, decided, expired or already existing →
 * 409, not allowed → 403, bad input → 400); anything else is answered 500 without details.
 */
export class AdminApiError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'AdminApiError';
  }
}

/**
 * What the admin API does, supplied by the application (the front routes, authenticates and parses;
 * it decides nothing). `identity` is the authenticated caller, never the anonymous identity. Results
 * are sent as JSON with status 200.
 */
export interface AdminApi {
  readonly approvals: {
    list(identity: Identity, filter: { readonly status?: string }): Promise<unknown>;
    get(identity: Identity, id: string): Promise<unknown>;
    approve(identity: Identity, id: string, body: { readonly note?: string }): Promise<unknown>;
    deny(identity: Identity, id: string, body: { readonly reason: string }): Promise<unknown>;
  };
  /** Upstream management: the application answers 403 `admin.required` to an identity that is no admin. */
  readonly upstreams: {
    list(identity: Identity): Promise<unknown>;
    get(identity: Identity, name: string): Promise<unknown>;
    test(identity: Identity, name: string, body: { readonly timeoutMs?: number }): Promise<unknown>;
    /** Adds or replaces `name` with `definition`; `onlyCreate` (`If-None-Match: *`): refuse an existing one. */
    put(
      identity: Identity,
      name: string,
      definition: Record<string, unknown>,
      options: { readonly onlyCreate: boolean },
    ): Promise<unknown>;
    setEnabled(identity: Identity, name: string, enabled: boolean): Promise<unknown>;
    remove(identity: Identity, name: string): Promise<unknown>;
  };
  /** Reconciles the upstreams with `document.upstreams` (only reports the plan with `dryRun`); admins only. */
  apply(
    identity: Identity,
    body: { readonly document: Record<string, unknown>; readonly dryRun: boolean; readonly source?: string },
  ): Promise<unknown>;
}

export interface AdminRequestOptions {
  readonly api: AdminApi;
  /** The front's authenticator; its anonymous identity is refused here whatever `auth.anonymous` says. */
  readonly authenticate: (request: IncomingMessage) => Identity | undefined | Promise<Identity | undefined>;
  readonly logger: Logger;
  readonly maxBodyBytes: number;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function sendError(res: ServerResponse, status: number, reason: string, message: string): void {
  sendJson(res, status, { error: { reason, message } });
}

/** The JSON object body of a POST or PUT, or an AdminApiError (400, 413). An empty body is `{}`. */
async function readObject(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  const { chunks, tooLarge } = await readChunks(req, limit);
  if (tooLarge) throw new AdminApiError(413, 'body.too_large', `the body exceeds ${limit} bytes`);
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new AdminApiError(400, 'body.invalid', 'the body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new AdminApiError(400, 'body.invalid', 'the body must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

function optionalNumber(body: Record<string, unknown>, field: string): number | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0)
    throw new AdminApiError(400, 'body.invalid', `"${field}" must be a positive number`);
  return value;
}

function optionalText(body: Record<string, unknown>, field: string): string | undefined {
  const value = body[field];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new AdminApiError(400, 'body.invalid', `"${field}" must be a string`);
  return value;
}

/**
 * Serves one request under `/admin/v1/`: `Authorization: Bearer <API key>` is required (401
 * otherwise, also when anonymous MCP access is enabled), then
 * - `GET approvals[?status=S]`, `GET approvals/:id`,
 * - `POST approvals/:id/approve {note?}`, `POST approvals/:id/deny {reason}`,
 * - `GET upstreams`, `GET upstreams/:name`, `PUT upstreams/:name <definition>` (`If-None-Match: *`:
 *   only create), `DELETE upstreams/:name`, `POST upstreams/:name/enable|disable|test {timeoutMs?}`,
 * - `POST apply {document, dryRun?, source?}`.
 */
export async function handleAdminRequest(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  options: AdminRequestOptions,
): Promise<void> {
  const presented = typeof req.headers.authorization === 'string' && req.headers.authorization !== '';
  let identity: Identity | undefined;
  if (presented) {
    try {
      identity = await options.authenticate(req);
    } catch (error) {
      options.logger.error({ err: describeError(error), path: url.pathname }, 'cannot authenticate an admin request');
      req.resume();
      return sendError(res, 503, 'auth.unavailable', 'Service unavailable: cannot verify credentials');
    }
  }
  if (identity === undefined || identity.authMethod === 'anonymous') {
    req.resume();
    res.setHeader(
      'www-authenticate',
      presented ? 'Bearer realm="portcullis-admin", error="invalid_token"' : 'Bearer realm="portcullis-admin"',
    );
    return sendError(
      res,
      401,
      presented ? 'auth.invalid' : 'auth.required',
      presented
        ? 'Unauthorized: the bearer token is not a valid API key of this gateway (unknown or revoked)'
        : 'Unauthorized: the admin API requires an API key (Authorization: Bearer <key>)',
    );
  }
  const { approvals } = options.api;
  const method = req.method ?? 'GET';
  try {
    const parts = url.pathname
      .slice(ADMIN_PREFIX.length)
      .split('/')
      .filter((part) => part !== '')
      .map((part) => decodeURIComponent(part));
    if (parts[0] === 'approvals' && parts.length === 1) {
      if (method !== 'GET') return notAllowed(req, res, 'GET');
      const status = url.searchParams.get('status') ?? undefined;
      return sendJson(res, 200, await approvals.list(identity, status === undefined ? {} : { status }));
    }
    if (parts[0] === 'approvals' && parts.length === 2 && parts[1] !== undefined) {
      if (method !== 'GET') return notAllowed(req, res, 'GET');
      return sendJson(res, 200, await approvals.get(identity, parts[1]));
    }
    if (parts[0] === 'approvals' && parts.length === 3 && parts[1] !== undefined) {
      const id = parts[1];
      const verb = parts[2];
      if (verb !== 'approve' && verb !== 'deny') {
        req.resume();
        return sendError(res, 404, 'not_found', `no admin endpoint ${url.pathname}`);
      }
      if (method !== 'POST') return notAllowed(req, res, 'POST');
      const body = await readObject(req, options.maxBodyBytes);
      if (verb === 'approve') {
        const note = optionalText(body, 'note');
        return sendJson(res, 200, await approvals.approve(identity, id, note === undefined ? {} : { note }));
      }
      const reason = optionalText(body, 'reason');
      if (reason === undefined || reason.trim() === '') {
        throw new AdminApiError(400, 'body.invalid', 'a denial needs a "reason" (the agent reads it)');
      }
      return sendJson(res, 200, await approvals.deny(identity, id, { reason }));
    }
    if (parts[0] === 'upstreams') return await routeUpstreams(req, res, url, parts, identity, options);
    if (parts[0] === 'apply' && parts.length === 1) {
      if (method !== 'POST') return notAllowed(req, res, 'POST');
      const body = await readObject(req, options.maxBodyBytes);
      const document = body.document;
      if (typeof document !== 'object' || document === null || Array.isArray(document))
        throw new AdminApiError(400, 'body.invalid', '"document" must be a configuration object with "upstreams"');
      const dryRun = body.dryRun ?? false;
      if (typeof dryRun !== 'boolean') throw new AdminApiError(400, 'body.invalid', '"dryRun" must be a boolean');
      const source = optionalText(body, 'source');
      return sendJson(
        res,
        200,
        await options.api.apply(identity, {
          document: document as Record<string, unknown>,
          dryRun,
          ...(source === undefined ? {} : { source }),
        }),
      );
    }
    req.resume();
    return sendError(res, 404, 'not_found', `no admin endpoint ${url.pathname}`);
  } catch (error) {
    if (error instanceof URIError) {
      req.resume();
      return sendError(res, 400, 'path.invalid', 'the path is not valid percent-encoding');
    }
    if (error instanceof AdminApiError) {
      req.resume();
      return sendError(res, error.status, error.reason, error.message);
    }
    options.logger.error({ err: describeError(error), path: url.pathname }, 'admin request failed');
    if (res.headersSent) {
      res.end();
      return;
    }
    return sendError(res, 500, 'internal', 'Internal error');
  }
}

async function routeUpstreams(
  req: IncomingMessage,
  res: ServerResponse,
  url: URL,
  parts: readonly string[],
  identity: Identity,
  options: AdminRequestOptions,
): Promise<void> {
  const { upstreams } = options.api;
  const method = req.method ?? 'GET';
  const name = parts[1];
  if (name === undefined) {
    if (method !== 'GET') return notAllowed(req, res, 'GET');
    return sendJson(res, 200, await upstreams.list(identity));
  }
  if (parts.length === 2) {
    if (method === 'GET') return sendJson(res, 200, await upstreams.get(identity, name));
    if (method === 'DELETE') {
      req.resume();
      return sendJson(res, 200, await upstreams.remove(identity, name));
    }
    if (method === 'PUT') {
      const definition = await readObject(req, options.maxBodyBytes);
      const onlyCreate = req.headers['if-none-match'] === '*';
      return sendJson(res, 200, await upstreams.put(identity, name, definition, { onlyCreate }));
    }
    return notAllowed(req, res, 'GET, PUT, DELETE');
  }
  const verb = parts[2];
  if (parts.length === 3 && (verb === 'enable' || verb === 'disable' || verb === 'test')) {
    if (method !== 'POST') return notAllowed(req, res, 'POST');
    const body = await readObject(req, options.maxBodyBytes);
    if (verb === 'test') {
      const timeoutMs = optionalNumber(body, 'timeoutMs');
      return sendJson(res, 200, await upstreams.test(identity, name, timeoutMs === undefined ? {} : { timeoutMs }));
    }
    return sendJson(res, 200, await upstreams.setEnabled(identity, name, verb === 'enable'));
  }
  req.resume();
  return sendError(res, 404, 'not_found', `no admin endpoint ${url.pathname}`);
}

function notAllowed(req: IncomingMessage, res: ServerResponse, allow: string): void {
  req.resume();
  res.setHeader('allow', allow);
  sendError(res, 405, 'method_not_allowed', `method not allowed; use ${allow}`);
}
