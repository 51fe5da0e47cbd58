/**
 * Just enough JSON Schema navigation to keep a redacted `structuredContent` valid against the tool's
 * `outputSchema`: which subschemas describe a location (through `properties`, `items`, `prefixItems`,
 * `additionalProperties`, local `$ref`, `allOf`/`anyOf`/`oneOf`), whether a member is required, and
 * which string constraints a placeholder must satisfy.
 */

export type JsonSchema = Readonly<Record<string, unknown>>;

function isSchema(value: unknown): value is JsonSchema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function resolvePointer(root: JsonSchema, ref: string): JsonSchema | undefined {
  if (ref === '#') return root;
  if (!ref.startsWith('#/')) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(2).split('/')) {
    const part = decodeURIComponent(raw).replace(/~1/g, '/').replace(/~0/g, '~');
    if (!isSchema(node)) return undefined;
    node = node[part];
  }
  return isSchema(node) ? node : undefined;
}

/** The schema itself plus every branch it is composed of (refs resolved), depth-limited. */
function expand(root: JsonSchema, schema: JsonSchema, out: JsonSchema[], depth = 0): void {
  if (depth > 16 || out.includes(schema)) return;
  out.push(schema);
  if (typeof schema.$ref === 'string') {
    const target = resolvePointer(root, schema.$ref);
    if (target !== undefined) expand(root, target, out, depth + 1);
  }
  for (const keyword of ['allOf', 'anyOf', 'oneOf'] as const) {
    const branches = schema[keyword];
    if (Array.isArray(branches))
      for (const branch of branches) if (isSchema(branch)) expand(root, branch, out, depth + 1);
  }
}

function children(schema: JsonSchema, key: string | number): JsonSchema[] {
  const out: JsonSchema[] = [];
  if (typeof key === 'number') {
    const prefix = schema.prefixItems;
    if (Array.isArray(prefix) && isSchema(prefix[key])) out.push(prefix[key] as JsonSchema);
    else if (isSchema(schema.items)) out.push(schema.items);
    else if (Array.isArray(schema.items) && isSchema(schema.items[key])) out.push(schema.items[key] as JsonSchema);
    return out;
  }
  const properties = schema.properties;
  if (isSchema(properties) && isSchema(properties[key])) out.push(properties[key] as JsonSchema);
  else if (isSchema(schema.additionalProperties)) out.push(schema.additionalProperties);
  return out;
}

/** Every (expanded) subschema that describes the value at `keys`. */
export function schemasAt(root: JsonSchema, keys: readonly (string | number)[]): JsonSchema[] {
  let current: JsonSchema[] = [];
  expand(root, root, current);
  for (const key of keys) {
    const next: JsonSchema[] = [];
    for (const schema of current) for (const child of children(schema, key)) expand(root, child, next);
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

/**
 * Whether removing the value at `keys` could violate the schema: the member is `required` in some
 * schema of its parent, or it is an array element under `minItems`/`prefixItems`. Conservative.
 */
export function isRemovalForbidden(root: JsonSchema, keys: readonly (string | number)[]): boolean {
  if (keys.length === 0) return true;
  const key = keys[keys.length - 1]!;
  const parents = schemasAt(root, keys.slice(0, -1));
  return parents.some((schema) => {
    if (typeof key === 'number') {
      return (typeof schema.minItems === 'number' && schema.minItems > 0) || Array.isArray(schema.prefixItems);
    }
    return Array.isArray(schema.required) && schema.required.includes(key);
  });
}

const FORMAT_PLACEHOLDERS: Readonly<Record<string, string>> = {
  email: 'redacted@redacted.invalid',
  'idn-email': 'redacted@redacted.invalid',
  uri: 'urn:redacted',
  iri: 'urn:redacted',
  'uri-reference': 'urn:redacted',
  url: 'urn:redacted',
  uuid: '00000000-0000-0000-0000-000000000000',
  'date-time': '1970-01-01T00:00:00Z',
  date: '1970-01-01',
  time: '00:00:00Z',
  ipv4: '0.0.0.0',
  ipv6: '::',
  hostname: 'redacted.invalid',
  'idn-hostname': 'redacted.invalid',
};

/**
 * Makes a redacted string acceptable where the schema constrains it: `const` and `enum` take their
 * (first) allowed value, known `format`s a fixed placeholder, `maxLength`/`minLength` truncate or pad.
 * `pattern` is not satisfied (documented limit).
 */
export function conformString(value: string, schemas: readonly JsonSchema[]): string {
  let out = value;
  for (const schema of schemas) {
    if (typeof schema.const === 'string') return schema.const;
    if (Array.isArray(schema.enum)) {
      const first = schema.enum.find((entry): entry is string => typeof entry === 'string');
      if (first !== undefined && !schema.enum.includes(out)) return first;
    }
    if (typeof schema.format === 'string' && FORMAT_PLACEHOLDERS[schema.format] !== undefined) {
      out = FORMAT_PLACEHOLDERS[schema.format]!;
    }
  }
  for (const schema of schemas) {
    if (typeof schema.maxLength === 'number' && out.length > schema.maxLength) out = out.slice(0, schema.maxLength);
    if (typeof schema.minLength === 'number' && out.length < schema.minLength) {
      out = out.padEnd(schema.minLength, '*');
    }
  }
  return out;
}
