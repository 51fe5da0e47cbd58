/** One difference between two JSON values, at a JSONPath-like location (`$.content[0].text`). */
export interface JsonChange {
  readonly path: string;
  readonly kind: 'added' | 'removed' | 'changed';
  readonly before?: unknown;
  readonly after?: unknown;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const keyPath = (path: string, key: string) =>
  IDENTIFIER.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;

/**
 * Structural differences between `before` and `after`: objects compared key by key (in sorted
 * order), arrays index by index, anything else by value. Text that holds JSON (a tool's text
 * content often does) is compared as JSON, so one changed field shows as one change.
 */
export function diffJson(before: unknown, after: unknown, path = '$'): JsonChange[] {
  if (typeof before === 'string' && typeof after === 'string' && before !== after) {
    const parsedBefore = parseJsonText(before);
    const parsedAfter = parseJsonText(after);
    if (parsedBefore !== undefined && parsedAfter !== undefined) {
      return diffJson(parsedBefore.value, parsedAfter.value, `${path}<json>`);
    }
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const changes: JsonChange[] = [];
    const length = Math.max(before.length, after.length);
    for (let i = 0; i < length; i += 1) {
      const at = `${path}[${i}]`;
      if (i >= after.length) changes.push({ path: at, kind: 'removed', before: before[i] });
      else if (i >= before.length) changes.push({ path: at, kind: 'added', after: after[i] });
      else changes.push(...diffJson(before[i], after[i], at));
    }
    return changes;
  }
  if (isObject(before) && isObject(after)) {
    const changes: JsonChange[] = [];
    const keys = [...new Set([...Object.keys(before), ...Object.keys(after)])].sort();
    for (const key of keys) {
      const at = keyPath(path, key);
      if (!(key in after)) changes.push({ path: at, kind: 'removed', before: before[key] });
      else if (!(key in before)) changes.push({ path: at, kind: 'added', after: after[key] });
      else changes.push(...diffJson(before[key], after[key], at));
    }
    return changes;
  }
  if (Object.is(before, after)) return [];
  return [{ path, kind: 'changed', before, after }];
}

function parseJsonText(text: string): { value: unknown } | undefined {
  const trimmed = text.trim();
  if (!(trimmed.startsWith('{') || trimmed.startsWith('['))) return undefined;
  try {
    return { value: JSON.parse(trimmed) };
  } catch {
    return undefined;
  }
}

function show(value: unknown, max = 120): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** One line per change: `~ path: before → after`, `+ path: after`, `- path: before`. */
export function formatChanges(changes: readonly JsonChange[]): string[] {
  return changes.map((change) => {
    if (change.kind === 'added') return `+ ${change.path}: ${show(change.after)}`;
    if (change.kind === 'removed') return `- ${change.path}: ${show(change.before)}`;
    return `~ ${change.path}: ${show(change.before)} → ${show(change.after)}`;
  });
}
