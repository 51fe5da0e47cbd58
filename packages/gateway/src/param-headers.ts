import { encodeMcpHeaderValue } from '@portcullis/core';

/**
 * SEP-2243 `Mcp-Param-*` headers for a `tools/call` towards a 2026-era HTTP upstream. A tool's input
 * schema may mark arguments with `x-mcp-header: <Name>`; a client then mirrors each such argument
 * in an `Mcp-Param-<Name>` header, and the upstream rejects a call whose headers are missing or
 * disagree with the body (-32020). The gateway sends calls with the raw request API, which mirrors
 * nothing, so it builds the headers itself from the schema the upstream listed.
 *
 * The rules follow the spec (and the SDK client, whose helpers are not exported): only properties
 * reached through a chain of `properties` keys count; a null or absent argument sends no header;
 * strings, booleans and finite numbers are sent as text; a value that is not a plain visible-ASCII
 * field value (or looks like the sentinel itself) is sent as `=?base64?<utf-8 base64>?=`.
 */

interface Declaration {
  readonly path: readonly string[];
  readonly header: string;
}

const HEADER_PREFIX = 'Mcp-Param-';
/** An RFC 9110 token: what a header name may consist of. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Declarations per schema object (catalog items are immutable, so the scan is done once per listing). */
const scans = new WeakMap<object, readonly Declaration[]>();

function declarationsOf(schema: Record<string, unknown>): readonly Declaration[] {
  const cached = scans.get(schema);
  if (cached) return cached;
  const found: Declaration[] = [];
  const walk = (node: Record<string, unknown>, path: readonly string[]): void => {
    const properties = node.properties;
    if (!isRecord(properties)) return;
    for (const [key, child] of Object.entries(properties)) {
      if (!isRecord(child)) continue;
      const header = child['x-mcp-header'];
      if (typeof header === 'string' && TOKEN.test(header)) found.push({ path: [...path, key], header });
      walk(child, [...path, key]);
    }
  };
  walk(schema, []);
  scans.set(schema, found);
  return found;
}

/** Whether a tool's input schema marks any argument with `x-mcp-header` (anywhere, however malformed). */
export function declaresMcpHeaders(schema: Readonly<Record<string, unknown>>): boolean {
  let declared = marked.get(schema);
  if (declared === undefined) {
    declared = JSON.stringify(schema).includes('"x-mcp-header"');
    marked.set(schema, declared);
  }
  return declared;
}

const marked = new WeakMap<object, boolean>();

/** The headers to send with a call of a tool whose input schema is `schema`; `undefined` when none apply. */
export function mcpParamHeaders(schema: unknown, args: unknown): Record<string, string> | undefined {
  if (!isRecord(schema)) return undefined;
  const declarations = declarationsOf(schema);
  if (declarations.length === 0) return undefined;
  let headers: Record<string, string> | undefined;
  for (const declaration of declarations) {
    const text = asText(valueAt(args, declaration.path));
    if (text === undefined) continue;
    headers ??= {};
    headers[`${HEADER_PREFIX}${declaration.header}`] = encodeMcpHeaderValue(text);
  }
  return headers;
}

function valueAt(root: unknown, path: readonly string[]): unknown {
  let node = root;
  for (const key of path) {
    if (!isRecord(node)) return undefined;
    node = node[key];
  }
  return node;
}

function asText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (typeof value === 'number' && Number.isFinite(value) && (!Number.isInteger(value) || Number.isSafeInteger(value)))
    return String(value);
  return undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
