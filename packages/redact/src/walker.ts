import type { RedactionAction, ValueRenderer } from './actions.js';
import { SECRET_KEY_PATTERN } from './detectors.js';
import { formatPath, selectPath } from './path.js';
import type { CompiledFieldRule, RedactionPlan } from './rules.js';
import { type ActiveDetector, CHUNK_SIZE, redactText, redactTextSync, TimeBudget } from './scan.js';
import { conformString, isRemovalForbidden, type JsonSchema, schemasAt } from './schema.js';
import { type RedactionSummary, SummaryBuilder } from './summary.js';

/**
 * Walks every place of an MCP message where an upstream can put data and redacts it:
 * - every string of the message, except protocol fields (`type`, `mimeType`, `uri`, `role`,
 *   `requestState`, `method`, `progressToken`, schema keywords …, see `PROTOCOL_KEYS`);
 * - `structuredContent` (and `notifications/message` `data`) as JSON documents: field rules, then
 *   detectors on every string, number and key; the tool's `outputSchema` is kept satisfied;
 * - text content and text resources that parse as JSON: field rules too, when the plan has any;
 * - blobs whose MIME type is textual: decoded, redacted, re-encoded;
 * - image, audio and other binary blobs: untouched, unless the plan drops binary content.
 * The input is never modified: containers on the way are copied.
 */

/** Keys whose string values are protocol, not data: never rewritten. */
export const PROTOCOL_KEYS: ReadonlySet<string> = new Set([
  'type',
  'mimeType',
  'uri',
  'uriTemplate',
  'role',
  'requestState',
  'resultType',
  'method',
  'progressToken',
  'level',
  'format',
  'enum',
  'const',
  'required',
  'pattern',
  '$schema',
  '$ref',
  '$id',
  '$anchor',
  'mode',
  'action',
  'audience',
  'priority',
  'lastModified',
  'nextCursor',
]);

const TEXTUAL_MIME =
  /^(?:text\/|application\/(?:json|xml|yaml|x-yaml|javascript|x-www-form-urlencoded|toml|sql|graphql)\b|[^;]*\+(?:json|xml)\b)/i;

export function isTextualMime(mimeType: unknown): boolean {
  return typeof mimeType === 'string' && TEXTUAL_MIME.test(mimeType);
}

/** JSON text parsed for field rules up to this size; larger texts get detectors only. */
export const MAX_JSON_TEXT = 16 * 1024 * 1024;

/** Leaves processed between two looks at the clock in a JSON document. */
const LEAVES_PER_CHECK = 512;

type Container = Record<string, unknown> | unknown[];

type Task =
  | { kind: 'text'; holder: Container; key: string | number; location: string; json: boolean }
  | { kind: 'blob'; holder: Container; key: string | number; location: string }
  | { kind: 'document'; holder: Container; key: string | number; location: string; schema: JsonSchema | undefined };

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function childLocation(location: string, key: string | number): string {
  return formatPath([key], location);
}

/** Copies containers (not strings) so the walk can write into its own copy. */
function cloneJson(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(cloneJson);
  if (isRecord(value)) {
    const out: Record<string, unknown> = {};
    for (const key of Object.keys(value)) out[key] = cloneJson(value[key]);
    return out;
  }
  return value;
}

export interface WalkOptions {
  /** The tool's `outputSchema`: `structuredContent` is kept valid against it. */
  readonly outputSchema?: JsonSchema | undefined;
  /** Root keys holding JSON documents (default by method). */
  readonly budget?: TimeBudget;
}

export interface Redacted<T> {
  readonly value: T;
  readonly summary: RedactionSummary;
}

class Walk {
  readonly summary = new SummaryBuilder();
  readonly tasks: Task[] = [];
  readonly detectors: readonly ActiveDetector[];
  readonly assignment: ActiveDetector | undefined;
  /** Values a field rule wrote (`[REDACTED:ssn]`, `[HASH:…]`): detectors must not re-mask them. */
  readonly #fieldOutputs = new Set<string>();
  #leaves = 0;

  constructor(
    readonly plan: RedactionPlan,
    readonly renderer: ValueRenderer,
    readonly budget: TimeBudget,
  ) {
    this.detectors = plan.detectors;
    this.assignment = plan.detectors.find((active) => active.detector.id === 'secret-assignment');
  }

  finding(type: string, location: string, action: RedactionAction, rule: string): void {
    this.summary.add(type, location, action, rule);
  }

  // -------------------------------------------------------------------------------------------
  // Phase 1: copy the message and list what to redact.

  visit(value: unknown, location: string, rootDocuments?: ReadonlyMap<string, JsonSchema | undefined>): unknown {
    if (Array.isArray(value)) {
      const copy = value.slice();
      for (let i = 0; i < copy.length; i++) this.visitChild(copy, i, copy[i], childLocation(location, i), false);
      return copy;
    }
    if (!isRecord(value)) return value;
    const binary = this.binaryReplacement(value, location);
    if (binary !== undefined) return binary;
    const copy: Record<string, unknown> = { ...value };
    const isBinaryBlock = (value.type === 'image' || value.type === 'audio') && typeof value.data === 'string';
    const isTextBlock = value.type === 'text' || typeof value.uri === 'string';
    for (const key of Object.keys(copy)) {
      if (PROTOCOL_KEYS.has(key)) continue;
      if (isBinaryBlock && key === 'data') continue;
      const child = copy[key];
      const keyLocation = childLocation(location, key);
      if (key === 'blob' && typeof child === 'string') {
        if (isTextualMime(value.mimeType)) this.tasks.push({ kind: 'blob', holder: copy, key, location: keyLocation });
        continue;
      }
      if (rootDocuments?.has(key) && child !== undefined && child !== null) {
        copy[key] = cloneJson(child);
        this.tasks.push({ kind: 'document', holder: copy, key, location: keyLocation, schema: rootDocuments.get(key) });
        continue;
      }
      this.visitChild(copy, key, child, keyLocation, key === 'text' && isTextBlock);
    }
    return copy;
  }

  visitChild(holder: Container, key: string | number, child: unknown, location: string, json: boolean): void {
    if (typeof child === 'string') {
      if (child.length > 0) this.tasks.push({ kind: 'text', holder, key, location, json });
    } else if (typeof child === 'object' && child !== null) {
      (holder as Record<string | number, unknown>)[key] = this.visit(child, location);
    }
  }

  /** Image/audio blocks and non-text blobs when the plan drops binary content. */
  binaryReplacement(value: Record<string, unknown>, location: string): Record<string, unknown> | undefined {
    if (!this.plan.dropBinary) return undefined;
    const rule = this.plan.binaryRule ?? '';
    if ((value.type === 'image' || value.type === 'audio') && typeof value.data === 'string') {
      this.finding(value.type, location, 'drop', rule);
      return { type: 'text', text: `[REDACTED:${value.type}]` };
    }
    if (typeof value.blob === 'string' && !isTextualMime(value.mimeType)) {
      this.finding('blob', location, 'drop', rule);
      const { blob: _blob, ...rest } = value;
      return { ...rest, mimeType: 'text/plain', text: '[REDACTED:blob]' };
    }
    return undefined;
  }

  // -------------------------------------------------------------------------------------------
  // Phase 2: redact.

  async run(): Promise<void> {
    for (const task of this.tasks) {
      const holder = task.holder as Record<string | number, unknown>;
      const current = holder[task.key];
      if (task.kind === 'document') {
        holder[task.key] = await this.document(current, task.location, task.schema);
      } else if (task.kind === 'text') {
        holder[task.key] = await this.text(current as string, task.location, task.json);
      } else {
        const decoded = Buffer.from(current as string, 'base64').toString('utf8');
        const redacted = await this.text(decoded, task.location, true);
        if (redacted !== decoded) holder[task.key] = Buffer.from(redacted, 'utf8').toString('base64');
      }
      await this.budget.maybeYield();
    }
  }

  async text(text: string, location: string, json: boolean): Promise<string> {
    if (json && this.plan.fields.length > 0 && text.length <= MAX_JSON_TEXT) {
      const first = text.trimStart()[0];
      if (first === '{' || first === '[') {
        let parsed: unknown;
        let ok = true;
        try {
          parsed = JSON.parse(text);
        } catch {
          ok = false;
        }
        if (ok) {
          const before = this.summary.total;
          const redacted = await this.document(parsed, location, undefined);
          if (this.summary.total === before) return text;
          return text.includes('\n') ? JSON.stringify(redacted, null, 2) : JSON.stringify(redacted);
        }
      }
    }
    return redactText(
      text,
      this.detectors,
      this.renderer,
      (finding) => this.finding(finding.type, location, finding.action, finding.rule),
      this.budget,
    );
  }

  /** A JSON document (already a private copy): field rules, then detectors on every leaf, then schema conformance. */
  async document(doc: unknown, location: string, schema: JsonSchema | undefined): Promise<unknown> {
    const holder: Record<string, unknown> = { $: doc };
    const changed: (string | number)[][] = [];
    if (this.plan.fields.length > 0) this.applyFields(holder, location, schema, changed);
    holder.$ = await this.leaves(holder.$, location, [], changed);
    if (schema !== undefined) {
      for (const keys of changed) this.conform(holder, keys, schema);
    }
    return holder.$;
  }

  applyFields(
    holder: Record<string, unknown>,
    location: string,
    schema: JsonSchema | undefined,
    changed: (string | number)[][],
  ): void {
    const drops: { parent: Container; key: string | number }[] = [];
    for (const field of this.plan.fields) {
      for (const match of selectPath(holder.$, field.path, holder)) {
        const where = formatPath(match.keys, location);
        let action = field.action;
        if (action === 'drop') {
          const forbidden = match.keys.length === 0 || (schema !== undefined && isRemovalForbidden(schema, match.keys));
          if (!forbidden) {
            drops.push({ parent: match.parent, key: match.key });
            this.finding(field.label, where, 'drop', field.rule);
            continue;
          }
          action = 'mask';
        }
        const parent = match.parent as Record<string | number, unknown>;
        parent[match.key] = this.transform(parent[match.key], action, field, [...match.keys], changed);
        this.finding(field.label, where, action, field.rule);
      }
    }
    // Array elements from the end so earlier indices stay valid.
    drops.sort((a, b) => (typeof b.key === 'number' ? b.key : 0) - (typeof a.key === 'number' ? a.key : 0));
    for (const { parent, key } of drops) {
      if (Array.isArray(parent)) parent.splice(key as number, 1);
      else delete parent[key as string];
    }
  }

  /** mask/partial/hash of one value, keeping its JSON type (containers: every leaf). */
  transform(
    value: unknown,
    action: RedactionAction,
    field: CompiledFieldRule,
    keys: (string | number)[],
    changed: (string | number)[][],
  ): unknown {
    if (typeof value === 'string') {
      changed.push(keys);
      const out = this.renderer.text(action, field.label, value);
      this.#fieldOutputs.add(out);
      return out;
    }
    if (typeof value === 'number') return this.renderer.number(action, value);
    if (typeof value === 'boolean') return false;
    if (Array.isArray(value)) return value.map((item, i) => this.transform(item, action, field, [...keys, i], changed));
    if (isRecord(value)) {
      for (const key of Object.keys(value))
        value[key] = this.transform(value[key], action, field, [...keys, key], changed);
      return value;
    }
    return value;
  }

  async leaves(
    value: unknown,
    location: string,
    keys: (string | number)[],
    changed: (string | number)[][],
  ): Promise<unknown> {
    if (typeof value === 'string') return this.leafString(value, location, keys, changed);
    if (typeof value === 'number') return this.leafNumber(value, location, keys);
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        keys.push(i);
        value[i] = await this.leaves(value[i], location, keys, changed);
        keys.pop();
      }
      return value;
    }
    if (!isRecord(value)) return value;
    for (const key of Object.keys(value)) {
      const child = value[key];
      keys.push(key);
      if (this.assignment !== undefined && typeof child === 'string' && SECRET_KEY_PATTERN.test(key)) {
        const trimmed = child.trim();
        if (trimmed.length > 0 && !trimmed.startsWith('[REDACTED') && !trimmed.startsWith('[HASH')) {
          const { action, rule } = this.assignment;
          value[key] = this.renderer.text(action, 'secret-assignment', child);
          this.finding('secret-assignment', formatPath(keys, location), action, rule);
          changed.push([...keys]);
          keys.pop();
          continue;
        }
      }
      value[key] = await this.leaves(child, location, keys, changed);
      keys.pop();
      const renamed = this.leafKey(key, location, keys);
      if (renamed !== key) {
        let target = renamed;
        for (let n = 2; Object.hasOwn(value, target); n++) target = `${renamed}#${n}`;
        value[target] = value[key];
        delete value[key];
      }
    }
    return value;
  }

  async tick(): Promise<void> {
    if (++this.#leaves % LEAVES_PER_CHECK === 0) await this.budget.maybeYield();
  }

  async leafString(
    value: string,
    location: string,
    keys: (string | number)[],
    changed: (string | number)[][],
  ): Promise<string> {
    await this.tick();
    if (value.length === 0 || this.#fieldOutputs.has(value)) return value;
    const where = () => formatPath(keys, location);
    const onFinding = (finding: { type: string; action: RedactionAction; rule: string }) =>
      this.finding(finding.type, where(), finding.action, finding.rule);
    const out =
      value.length <= CHUNK_SIZE
        ? redactTextSync(value, this.detectors, this.renderer, onFinding)
        : await redactText(value, this.detectors, this.renderer, onFinding, this.budget);
    if (out !== value) changed.push([...keys]);
    return out;
  }

  /** Large integers (card numbers stored as numbers): redacted when a detector matches the whole number. */
  async leafNumber(value: number, location: string, keys: (string | number)[]): Promise<number> {
    await this.tick();
    if (!Number.isInteger(value) || Math.abs(value) < 1e8) return value;
    const text = String(value);
    for (const active of this.detectors) {
      let whole = false;
      active.detector.find(text, (start, end) => {
        if (start === 0 && end === text.length) whole = true;
      });
      if (whole) {
        this.finding(active.detector.id, formatPath(keys, location), active.action, active.rule);
        return this.renderer.number(active.action, value);
      }
    }
    return value;
  }

  /** Object keys are data too (maps keyed by e-mail address): a key a detector matches is renamed. */
  leafKey(key: string, location: string, keys: (string | number)[]): string {
    if (key.length < 6) return key;
    return redactTextSync(key, this.detectors, this.renderer, (finding) =>
      this.finding(finding.type, formatPath([...keys, key], location), finding.action, finding.rule),
    );
  }

  conform(holder: Record<string, unknown>, keys: readonly (string | number)[], schema: JsonSchema): void {
    let parent: unknown = holder.$;
    if (keys.length === 0) {
      if (typeof parent === 'string') holder.$ = conformString(parent, schemasAt(schema, []));
      return;
    }
    for (const key of keys.slice(0, -1)) {
      if (typeof parent !== 'object' || parent === null) return;
      parent = (parent as Record<string | number, unknown>)[key];
    }
    if (typeof parent !== 'object' || parent === null) return;
    const last = keys[keys.length - 1]!;
    const container = parent as Record<string | number, unknown>;
    const current = container[last];
    if (typeof current !== 'string') return;
    const schemas = schemasAt(schema, keys);
    if (schemas.length > 0) container[last] = conformString(current, schemas);
  }
}

function rootDocumentsFor(method: string, outputSchema: JsonSchema | undefined): Map<string, JsonSchema | undefined> {
  const documents = new Map<string, JsonSchema | undefined>();
  if (method === 'tools/call') documents.set('structuredContent', outputSchema);
  else if (method === 'notifications/message') documents.set('data', undefined);
  else documents.set('structuredContent', undefined);
  return documents;
}

async function walkMessage<T extends Record<string, unknown>>(
  method: string,
  message: T,
  plan: RedactionPlan,
  renderer: ValueRenderer,
  options: WalkOptions,
): Promise<Redacted<T>> {
  const walk = new Walk(plan, renderer, options.budget ?? new TimeBudget());
  const copy = walk.visit(message, '$', rootDocumentsFor(method, options.outputSchema)) as T;
  await walk.run();
  const summary = walk.summary.build();
  return { value: summary.total === 0 ? message : copy, summary };
}

/** The result of a request routed to an upstream (`tools/call`, `resources/read`, `prompts/get`, …). */
export function redactResult<T extends Record<string, unknown>>(
  method: string,
  result: T,
  plan: RedactionPlan,
  renderer: ValueRenderer,
  options: WalkOptions = {},
): Promise<Redacted<T>> {
  if (plan.empty) return Promise.resolve({ value: result, summary: new SummaryBuilder().build() });
  return walkMessage(method, result, plan, renderer, options);
}

/**
 * Params of a notification or request an upstream sends towards the agent: `notifications/message`
 * (its `data` as a JSON document), `notifications/progress` (`message`), `sampling/createMessage`
 * (messages, `systemPrompt`), `elicitation/create` (message, schema titles, descriptions and defaults, URL).
 */
export function redactOutbound<T extends Record<string, unknown>>(
  method: string,
  params: T,
  plan: RedactionPlan,
  renderer: ValueRenderer,
  options: WalkOptions = {},
): Promise<Redacted<T>> {
  return redactResult(method, params, plan, renderer, options);
}

/** Arguments as recorded in the session log: a JSON document (field rules, then detectors on every leaf). */
export async function redactArgs<T>(
  args: T,
  plan: RedactionPlan,
  renderer: ValueRenderer,
  options: WalkOptions = {},
): Promise<Redacted<T>> {
  if (plan.empty || args === undefined || args === null) {
    return { value: args, summary: new SummaryBuilder().build() };
  }
  const walk = new Walk(plan, renderer, options.budget ?? new TimeBudget());
  const value = (await walk.document(cloneJson(args), '$', undefined)) as T;
  const summary = walk.summary.build();
  return { value: summary.total === 0 ? args : value, summary };
}
