/**
 * The JSONPath subset field rules use (a strict subset of RFC 9535, parsed here, no dependency):
 *
 *   $                    the document itself
 *   .name   ['name']     a member (bracket form for any name: `$['x-y']`, `$["a b"]`, escapes \' \" \\)
 *   [0]  [-1]            an array element (negative counts from the end)
 *   .*  [*]              every member or element
 *   ['a','b']  [0,2]     a union of names or indices
 *   ..name  ..*  ..[0]   the selector applied at every depth (descendants, the node itself included
 *                        for members: `$..password` is every `password` member anywhere)
 *
 * Filters (`?()`), slices (`[0:2]`) and functions are not supported and are rejected by the parser.
 */

export type PathSelector =
  | { readonly kind: 'name'; readonly name: string }
  | { readonly kind: 'index'; readonly index: number }
  | { readonly kind: 'wildcard' };

export interface PathSegment {
  readonly descendant: boolean;
  readonly selectors: readonly PathSelector[];
}

export interface ParsedPath {
  readonly source: string;
  readonly segments: readonly PathSegment[];
}

export class PathSyntaxError extends Error {
  readonly position: number;
  constructor(message: string, position: number) {
    super(`${message} at position ${position}`);
    this.name = 'PathSyntaxError';
    this.position = position;
  }
}

function isNameStart(c: string): boolean {
  return /[A-Za-z_]/.test(c) || c.charCodeAt(0) >= 0x80;
}
function isNameChar(c: string): boolean {
  return /[A-Za-z0-9_]/.test(c) || c.charCodeAt(0) >= 0x80;
}

export function parsePath(source: string): ParsedPath {
  if (source.length > 1000) throw new PathSyntaxError('path longer than 1000 characters', 0);
  let i = 0;
  const fail = (message: string): never => {
    throw new PathSyntaxError(message, i);
  };
  if (source[0] !== '$') fail('a path starts with "$"');
  i = 1;
  const segments: PathSegment[] = [];

  const readDotMember = (): PathSelector => {
    const c = source[i];
    if (c === '*') {
      i++;
      return { kind: 'wildcard' };
    }
    if (c === undefined || !isNameStart(c)) {
      return fail(
        c === undefined ? 'a member name is missing' : `"${c}" cannot start a member name (use ['...'] for any name)`,
      );
    }
    const start = i;
    while (i < source.length && isNameChar(source[i]!)) i++;
    if (source[i] === '-') fail('"-" in a dotted member name (write $[\'a-b\'] instead)');
    return { kind: 'name', name: source.slice(start, i) };
  };

  const readQuoted = (): string => {
    const quote = source[i]!;
    i++;
    let out = '';
    while (i < source.length && source[i] !== quote) {
      if (source[i] === '\\') {
        const next = source[i + 1];
        if (next === quote || next === '\\' || next === "'" || next === '"') out += next;
        else if (next === 'n') out += '\n';
        else if (next === 't') out += '\t';
        else if (next === 'u' && /^[0-9A-Fa-f]{4}$/.test(source.slice(i + 2, i + 6))) {
          out += String.fromCharCode(Number.parseInt(source.slice(i + 2, i + 6), 16));
          i += 4;
        } else fail('unknown escape in a quoted name');
        i += 2;
      } else {
        out += source[i];
        i++;
      }
    }
    if (i >= source.length) fail('unterminated quoted name');
    i++;
    return out;
  };

  const readBracket = (): PathSelector[] => {
    i++; // [
    const selectors: PathSelector[] = [];
    for (;;) {
      while (source[i] === ' ') i++;
      const c = source[i];
      if (c === "'" || c === '"') selectors.push({ kind: 'name', name: readQuoted() });
      else if (c === '*') {
        i++;
        selectors.push({ kind: 'wildcard' });
      } else if (c !== undefined && /[-0-9]/.test(c)) {
        const match = /^-?(?:0|[1-9]\d{0,8})/.exec(source.slice(i));
        if (match === null) return fail('invalid array index');
        i += match[0].length;
        if (source[i] === ':') fail('slices are not supported');
        selectors.push({ kind: 'index', index: Number(match[0]) });
      } else if (c === '?') {
        return fail('filter expressions are not supported');
      } else if (c === ':') {
        return fail('slices are not supported');
      } else {
        return fail(c === undefined ? 'unterminated "["' : `unexpected "${c}" in brackets`);
      }
      while (source[i] === ' ') i++;
      if (source[i] === ',') {
        i++;
        continue;
      }
      if (source[i] === ']') {
        i++;
        return selectors;
      }
      return fail(source[i] === undefined ? 'unterminated "["' : `expected "," or "]", found "${source[i]}"`);
    }
  };

  while (i < source.length) {
    const c = source[i];
    if (c === '.' && source[i + 1] === '.') {
      i += 2;
      if (source[i] === '[') segments.push({ descendant: true, selectors: readBracket() });
      else segments.push({ descendant: true, selectors: [readDotMember()] });
    } else if (c === '.') {
      i++;
      segments.push({ descendant: false, selectors: [readDotMember()] });
    } else if (c === '[') {
      segments.push({ descendant: false, selectors: readBracket() });
    } else {
      fail(`unexpected "${c}"`);
    }
  }
  return { source, segments };
}

/** One place a path selects: the container holding it and the key or index within. */
export interface PathMatch {
  readonly parent: Record<string, unknown> | unknown[];
  readonly key: string | number;
  /** Keys from the document root to the value. */
  readonly keys: readonly (string | number)[];
}

function isContainer(value: unknown): value is Record<string, unknown> | unknown[] {
  return typeof value === 'object' && value !== null;
}

interface Node {
  readonly value: unknown;
  readonly parent: Record<string, unknown> | unknown[] | undefined;
  readonly key: string | number | undefined;
  readonly keys: readonly (string | number)[];
}

function applySelector(node: Node, selector: PathSelector, out: Node[]): void {
  const value = node.value;
  if (!isContainer(value)) return;
  if (Array.isArray(value)) {
    if (selector.kind === 'wildcard') {
      for (let k = 0; k < value.length; k++)
        out.push({ value: value[k], parent: value, key: k, keys: [...node.keys, k] });
    } else if (selector.kind === 'index') {
      const k = selector.index < 0 ? value.length + selector.index : selector.index;
      if (k >= 0 && k < value.length) out.push({ value: value[k], parent: value, key: k, keys: [...node.keys, k] });
    }
    return;
  }
  if (selector.kind === 'wildcard') {
    for (const k of Object.keys(value)) out.push({ value: value[k], parent: value, key: k, keys: [...node.keys, k] });
  } else if (selector.kind === 'name' && Object.hasOwn(value, selector.name)) {
    out.push({ value: value[selector.name], parent: value, key: selector.name, keys: [...node.keys, selector.name] });
  }
}

function descendants(node: Node, out: Node[]): void {
  out.push(node);
  const value = node.value;
  if (!isContainer(value)) return;
  if (Array.isArray(value)) {
    for (let k = 0; k < value.length; k++) {
      descendants({ value: value[k], parent: value, key: k, keys: [...node.keys, k] }, out);
    }
  } else {
    for (const k of Object.keys(value)) {
      descendants({ value: value[k], parent: value, key: k, keys: [...node.keys, k] }, out);
    }
  }
}

/**
 * Every place `path` selects in `root`. The root itself (`$`) is selected through a holder:
 * `{ parent: holder, key: '$' }`, so callers can replace it like any member.
 */
export function selectPath(root: unknown, path: ParsedPath, holder: Record<string, unknown>): PathMatch[] {
  let nodes: Node[] = [{ value: root, parent: holder, key: '$', keys: [] }];
  for (const segment of path.segments) {
    const next: Node[] = [];
    for (const node of nodes) {
      const scope: Node[] = [];
      if (segment.descendant) descendants(node, scope);
      else scope.push(node);
      for (const each of scope) for (const selector of segment.selectors) applySelector(each, selector, next);
    }
    nodes = next;
  }
  // A value reached twice (a union naming it twice, overlapping descendants) is one match.
  const seen = new Set<string>();
  const matches: PathMatch[] = [];
  for (const node of nodes) {
    if (node.parent === undefined || node.key === undefined) continue;
    const id = JSON.stringify(node.keys);
    if (seen.has(id)) continue;
    seen.add(id);
    matches.push({ parent: node.parent, key: node.key, keys: node.keys });
  }
  return matches;
}

/** `$.a[0]['x-y']`: a location in JSONPath notation. */
export function formatPath(keys: readonly (string | number)[], prefix = '$'): string {
  let out = prefix;
  for (const key of keys) {
    if (typeof key === 'number') out += `[${key}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) out += `.${key}`;
    else out += `['${key.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}']`;
  }
  return out;
}
