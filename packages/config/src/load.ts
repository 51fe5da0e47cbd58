import { readFile } from 'node:fs/promises';
import { PortcullisError } from '@portcullis/core';
import { isMap, isScalar, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { type Config, ConfigSchema, resolveUpstream, type UpstreamSpec } from './schema.js';

/** One problem in a configuration file: where it is and why it is wrong. */
export interface ConfigIssue {
  readonly path: string;
  readonly line: number | undefined;
  readonly column: number | undefined;
  readonly reason: string;
}

/** A configuration file that cannot be used. The message names the file, each place and each reason. */
export class ConfigError extends PortcullisError {
  readonly file: string;
  readonly issues: readonly ConfigIssue[];

  constructor(file: string, issues: readonly ConfigIssue[], options?: { cause?: unknown }) {
    super('config.invalid', formatIssues(file, issues), options);
    this.name = 'ConfigError';
    this.file = file;
    this.issues = issues;
  }
}

/** `file:line:col at path: reason`, one line per issue. */
export function formatIssues(file: string, issues: readonly ConfigIssue[]): string {
  const lines = issues.map((issue) => {
    const where = issue.line === undefined ? '' : `:${issue.line}:${issue.column ?? 1}`;
    const path = issue.path === '' ? '' : ` at ${issue.path}`;
    return `${file}${where}${path}: ${issue.reason}`;
  });
  return lines.join('\n');
}

export async function loadConfigFile(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : 'cannot be read';
    throw new ConfigError(file, [{ path: '', line: undefined, column: undefined, reason }], { cause: error });
  }
  return parseConfig(text, file);
}

/** Parses YAML (JSON is YAML) and validates it against `ConfigSchema`. */
export function parseConfig(text: string, file: string): Config {
  const parsed = parseYamlWithSchema(text, ConfigSchema);
  if (parsed.ok) return parsed.value;
  throw new ConfigError(file, parsed.issues);
}

/** Finds the line and column of a path in a parsed YAML document (the deepest existing node along it). */
export type YamlLocator = (path: readonly (string | number)[]) => { line: number; column: number } | undefined;

export type YamlParseResult<T> =
  | { readonly ok: true; readonly value: T; readonly locate: YamlLocator }
  | { readonly ok: false; readonly issues: readonly ConfigIssue[] };

/**
 * Parses YAML text and validates it against a zod schema. Problems come back as located issues
 * (line, column, path, reason) — the format every Portcullis file error uses. On success the
 * locator finds places in the document for checks that run after the schema (e.g. compiling rules).
 */
export function parseYamlWithSchema<S extends z.ZodType>(text: string, schema: S): YamlParseResult<z.output<S>> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    return {
      ok: false,
      issues: doc.errors.map((error) => {
        const pos = lineCounter.linePos(error.pos[0]);
        return { path: '', line: pos.line, column: pos.col, reason: error.message.split('\n')[0] ?? error.message };
      }),
    };
  }
  const raw: unknown = doc.toJS() ?? {};
  const result = schema.safeParse(raw);
  const locateAt: YamlLocator = (path) => {
    const position = locate(doc, lineCounter, path);
    return position === undefined ? undefined : { line: position.line, column: position.col };
  };
  if (result.success) return { ok: true, value: result.data, locate: locateAt };
  return {
    ok: false,
    issues: result.error.issues.map((issue) => {
      const path = issue.path.filter((key): key is string | number => typeof key !== 'symbol');
      // An unknown key is reported at the key itself, not at the map holding it.
      const firstUnknown = issue.code === 'unrecognized_keys' ? issue.keys[0] : undefined;
      const position =
        (firstUnknown === undefined ? undefined : locateKey(doc, lineCounter, path, firstUnknown)) ??
        locate(doc, lineCounter, path);
      return { path: formatPath(path), line: position?.line, column: position?.col, reason: describeIssue(issue) };
    }),
  };
}

function describeIssue(issue: z.core.$ZodIssue): string {
  if (issue.code === 'invalid_key') return issue.issues[0]?.message ?? issue.message;
  if (issue.code === 'unrecognized_keys')
    return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}`;
  return issue.message;
}

/** `rules[2].when`: a path as the error messages print it. */
export function formatPath(path: readonly (string | number)[]): string {
  return path.map((key, index) => (typeof key === 'number' ? `[${key}]` : index === 0 ? key : `.${key}`)).join('');
}

/** The deepest node along `path` that exists in the document, as a line and column. */
function locate(
  doc: ReturnType<typeof parseDocument>,
  lineCounter: LineCounter,
  path: readonly (string | number)[],
): { line: number; col: number } | undefined {
  for (let depth = path.length; depth >= 0; depth--) {
    const prefix = path.slice(0, depth);
    const node = prefix.length === 0 ? doc.contents : doc.getIn(prefix, true);
    if (node && typeof node === 'object' && 'range' in node && Array.isArray(node.range)) {
      // For a missing key this is the map that should hold it.
      return lineCounter.linePos(node.range[0] as number);
    }
  }
  return undefined;
}

/** The position of the key `key` inside the map at `path`. */
function locateKey(
  doc: ReturnType<typeof parseDocument>,
  lineCounter: LineCounter,
  path: readonly (string | number)[],
  key: string,
): { line: number; col: number } | undefined {
  const map = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (!isMap(map)) return undefined;
  const pair = map.items.find((item) => isScalar(item.key) && item.key.value === key);
  const range = pair && isScalar(pair.key) ? pair.key.range : undefined;
  return range ? lineCounter.linePos(range[0]) : undefined;
}

/** Every configured upstream with defaults resolved, in file order. */
export function upstreamSpecs(config: Config): UpstreamSpec[] {
  return Object.entries(config.upstreams).map(([name, upstream]) => resolveUpstream(name, upstream));
}
