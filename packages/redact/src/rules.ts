import { canonicalName, type Identity, PortcullisError } from '@portcullis/core';
import { z } from 'zod';
import { REDACTION_ACTIONS, type RedactionAction, strongerAction } from './actions.js';
import { CustomPatternError, compileCustomPattern, customDetector } from './custom.js';
import { BUILTIN_DETECTOR_IDS, BUILTIN_DETECTORS, type BuiltinDetectorId, DEFAULT_DETECTOR_IDS } from './detectors.js';
import { type ParsedPath, PathSyntaxError, parsePath } from './path.js';
import type { ActiveDetector } from './scan.js';

/**
 * The redaction rule format. The policy document embeds `RedactionRulesSchema` (a list of rules);
 * this package validates and compiles it. Every error names the rule.
 */

export const RedactionActionSchema = z.enum(REDACTION_ACTIONS);

const NameList = z.array(z.string().min(1).max(512)).min(1);

/** Who and what a rule applies to. Absent keys do not constrain; each list matches any of its entries (`*` globs). */
export const RedactionMatchSchema = z
  .object({
    /** Upstream names. */
    upstreams: NameList.optional(),
    /** Tool names, as the upstream knows them or as the agent sees them (namespaced). */
    tools: NameList.optional(),
    /** Resource URIs, upstream's or gateway's (`crm+db://*`). */
    resources: NameList.optional(),
    /** Prompt names, upstream's or namespaced. */
    prompts: NameList.optional(),
    /** Identity subjects. */
    subjects: NameList.optional(),
    /** Identity groups (any of). */
    groups: NameList.optional(),
  })
  .strict();

export const DetectorIdSchema = z.enum(BUILTIN_DETECTOR_IDS);

export const DetectorRefSchema = z.union([
  DetectorIdSchema,
  z.object({ id: DetectorIdSchema, action: RedactionActionSchema }).strict(),
]);

const ID_PATTERN = /^[a-z][a-z0-9-]{0,31}$/;

export const CustomDetectorSchema = z
  .object({
    id: z.string().regex(ID_PATTERN, 'lowercase letters, digits and "-", starting with a letter, at most 32'),
    /** RE2 syntax (linear time; no backreferences or lookaround). Group 1, when present, is what is redacted. */
    pattern: z.string().min(1),
    caseInsensitive: z.boolean().optional(),
    validator: z.enum(['luhn', 'iban', 'mod97']).optional(),
    action: RedactionActionSchema.optional(),
  })
  .strict();

export const FieldRuleSchema = z
  .object({
    /** JSONPath subset: `$.a.b`, `$['x-y']`, `$.rows[*].ssn`, `$..password`, `$.a[0]`, `$.a['b','c']`. */
    path: z.string().min(1),
    action: RedactionActionSchema.optional(),
    /** The type shown in masks and summaries; default: the path's last member name, else `field`. */
    label: z.string().regex(ID_PATTERN).optional(),
  })
  .strict();

export const RedactionRuleSchema = z
  .object({
    name: z.string().min(1).max(128),
    description: z.string().optional(),
    /** Absent: every upstream, target and identity. */
    match: RedactionMatchSchema.optional(),
    /** The rule does not apply where this matches (e.g. `except: { groups: [support] }`). */
    except: RedactionMatchSchema.optional(),
    /** Built-in detectors: `default` (all but ipv4, ipv6, high-entropy), `all`, or a list. */
    detectors: z.union([z.enum(['default', 'all']), z.array(DetectorRefSchema)]).optional(),
    custom: z.array(CustomDetectorSchema).optional(),
    fields: z.array(FieldRuleSchema).optional(),
    /** Action for this rule's detectors and fields that name none. Default `mask`. */
    action: RedactionActionSchema.optional(),
    /** Binary content (image, audio, non-text blobs): `pass` (default) or `drop`. */
    binary: z.enum(['pass', 'drop']).optional(),
    /** Also redact tool/prompt arguments as recorded in the session log (the upstream gets the real ones). */
    args: z.boolean().optional(),
  })
  .strict()
  .superRefine((rule, ctx) => {
    rule.fields?.forEach((field, index) => {
      try {
        parsePath(field.path);
      } catch (error) {
        if (!(error instanceof PathSyntaxError)) throw error;
        ctx.addIssue({
          code: 'custom',
          path: ['fields', index, 'path'],
          message: `rule "${rule.name}": invalid path "${field.path}": ${error.message}`,
        });
      }
    });
    const ids = new Set<string>();
    rule.custom?.forEach((custom, index) => {
      if ((BUILTIN_DETECTOR_IDS as readonly string[]).includes(custom.id) || ids.has(custom.id)) {
        ctx.addIssue({
          code: 'custom',
          path: ['custom', index, 'id'],
          message: `rule "${rule.name}": detector id "${custom.id}" is already taken`,
        });
      }
      ids.add(custom.id);
      try {
        compileCustomPattern(custom.pattern, custom.caseInsensitive);
      } catch (error) {
        if (!(error instanceof CustomPatternError)) throw error;
        ctx.addIssue({
          code: 'custom',
          path: ['custom', index, 'pattern'],
          message: `rule "${rule.name}": invalid pattern for "${custom.id}": ${error.message}`,
        });
      }
    });
  });

export const RedactionRulesSchema = z.array(RedactionRuleSchema).superRefine((rules, ctx) => {
  const seen = new Set<string>();
  rules.forEach((rule, index) => {
    if (seen.has(rule.name)) {
      ctx.addIssue({ code: 'custom', path: [index, 'name'], message: `rule "${rule.name}": duplicate rule name` });
    }
    seen.add(rule.name);
  });
});

export type RedactionRule = z.infer<typeof RedactionRuleSchema>;
/** A rule as written in the policy document (before validation). */
export type RedactionRuleInput = z.input<typeof RedactionRuleSchema>;
export type RedactionRules = z.infer<typeof RedactionRulesSchema>;
export type RedactionMatch = z.infer<typeof RedactionMatchSchema>;

export interface RedactionRuleIssue {
  /** The rule's name when it could be read. */
  readonly rule: string | undefined;
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

export type RedactionValidation =
  | { readonly ok: true; readonly rules: RedactionRules }
  | { readonly ok: false; readonly issues: readonly RedactionRuleIssue[] };

export function validateRedactionRules(input: unknown): RedactionValidation {
  const parsed = RedactionRulesSchema.safeParse(input);
  if (parsed.success) return { ok: true, rules: parsed.data };
  const issues = parsed.error.issues.map((issue) => {
    const index = issue.path[0];
    const raw = typeof index === 'number' && Array.isArray(input) ? (input[index] as unknown) : undefined;
    const name =
      typeof raw === 'object' && raw !== null && typeof (raw as { name?: unknown }).name === 'string'
        ? (raw as { name: string }).name
        : undefined;
    const message =
      name !== undefined && !issue.message.startsWith('rule "') ? `rule "${name}": ${issue.message}` : issue.message;
    return { rule: name, path: issue.path, message };
  });
  return { ok: false, issues };
}

// ---------------------------------------------------------------------------------------------
// Compilation and matching.

/** What a request or message is about; the plan is chosen from it. */
export interface RedactionSubject {
  readonly upstream: string | undefined;
  /** Absent for messages not tied to a known call (rules naming targets then apply: fail closed). */
  readonly kind?: 'tool' | 'resource' | 'prompt' | undefined;
  /** Name or URI as the upstream knows it. */
  readonly name?: string | undefined;
  /** Name or URI as the agent sees it. */
  readonly namespacedName?: string | undefined;
  readonly identity?: Identity | undefined;
}

export interface CompiledFieldRule {
  readonly path: ParsedPath;
  readonly action: RedactionAction;
  readonly label: string;
  readonly rule: string;
}

/** Everything that applies to one subject, merged from the rules that match it. */
export interface RedactionPlan {
  readonly detectors: readonly ActiveDetector[];
  readonly fields: readonly CompiledFieldRule[];
  readonly dropBinary: boolean;
  /** The rule that asked for binary content to be dropped. */
  readonly binaryRule: string | undefined;
  readonly args: boolean;
  /** The names of the rules that matched, in document order. */
  readonly rules: readonly string[];
  /** Nothing to do. */
  readonly empty: boolean;
}

export const EMPTY_PLAN: RedactionPlan = Object.freeze({
  detectors: Object.freeze([]),
  fields: Object.freeze([]),
  dropBinary: false,
  binaryRule: undefined,
  args: false,
  rules: Object.freeze([]),
  empty: true,
});

type Matcher = (value: string) => boolean;

function globMatcher(patterns: readonly string[]): Matcher {
  const regexes = patterns.map((pattern) => {
    const source = canonicalName(pattern)
      .split('*')
      .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))
      .join('[\\s\\S]*');
    return new RegExp(`^${source}$`);
  });
  return (value) => {
    const canonical = canonicalName(value);
    return regexes.some((regex) => regex.test(canonical));
  };
}

interface CompiledMatch {
  readonly upstreams?: Matcher;
  readonly tools?: Matcher;
  readonly resources?: Matcher;
  readonly prompts?: Matcher;
  readonly subjects?: Matcher;
  readonly groups?: Matcher;
}

function compileMatch(match: RedactionMatch | undefined): CompiledMatch | undefined {
  if (match === undefined) return undefined;
  const out: { -readonly [K in keyof CompiledMatch]: CompiledMatch[K] } = {};
  if (match.upstreams) out.upstreams = globMatcher(match.upstreams);
  if (match.tools) out.tools = globMatcher(match.tools);
  if (match.resources) out.resources = globMatcher(match.resources);
  if (match.prompts) out.prompts = globMatcher(match.prompts);
  if (match.subjects) out.subjects = globMatcher(match.subjects);
  if (match.groups) out.groups = globMatcher(match.groups);
  return out;
}

/**
 * `unknownTarget`: how a selector on tools/resources/prompts treats a subject whose target is unknown
 * (a notification not tied to a call): `true` for `match` (apply: fail closed), `false` for `except`.
 */
function matches(match: CompiledMatch, subject: RedactionSubject, unknownTarget: boolean): boolean {
  if (match.upstreams && (subject.upstream === undefined || !match.upstreams(subject.upstream))) {
    // An unknown upstream cannot be excluded from a `match`, nor claimed by an `except`.
    if (!(subject.upstream === undefined && unknownTarget)) return false;
  }
  const targetSelectors = [
    ['tool', match.tools],
    ['resource', match.resources],
    ['prompt', match.prompts],
  ] as const;
  if (targetSelectors.some(([, m]) => m !== undefined)) {
    if (subject.kind === undefined) {
      if (!unknownTarget) return false;
    } else {
      const selector = targetSelectors.find(([kind]) => kind === subject.kind)?.[1];
      const names = [subject.name, subject.namespacedName].filter((n): n is string => n !== undefined);
      if (selector === undefined || !names.some((name) => selector(name))) return false;
    }
  }
  const identity = subject.identity;
  if (match.subjects && (identity === undefined || !match.subjects(identity.subject))) return false;
  if (match.groups && (identity === undefined || !identity.groups.some((group) => match.groups!(group)))) return false;
  return true;
}

interface CompiledRule {
  readonly name: string;
  readonly match: CompiledMatch | undefined;
  readonly except: CompiledMatch | undefined;
  readonly detectors: readonly { readonly id: string; readonly action: RedactionAction }[];
  readonly custom: readonly ActiveDetector[];
  readonly fields: readonly CompiledFieldRule[];
  readonly dropBinary: boolean;
  readonly args: boolean;
}

function defaultLabel(path: ParsedPath): string {
  const last = path.segments[path.segments.length - 1];
  const selector = last?.selectors.length === 1 ? last.selectors[0] : undefined;
  if (selector?.kind === 'name' && ID_PATTERN.test(selector.name.toLowerCase())) return selector.name.toLowerCase();
  return 'field';
}

function compileRule(rule: RedactionRule): CompiledRule {
  const action = rule.action ?? 'mask';
  const refs =
    rule.detectors === undefined
      ? []
      : rule.detectors === 'default'
        ? DEFAULT_DETECTOR_IDS.map((id) => ({ id, action }))
        : rule.detectors === 'all'
          ? BUILTIN_DETECTOR_IDS.map((id) => ({ id, action }))
          : rule.detectors.map((ref) => (typeof ref === 'string' ? { id: ref, action } : ref));
  return {
    name: rule.name,
    match: compileMatch(rule.match),
    except: compileMatch(rule.except),
    detectors: refs,
    custom: (rule.custom ?? []).map((spec) => ({
      detector: customDetector(spec),
      action: spec.action ?? action,
      rule: rule.name,
    })),
    fields: (rule.fields ?? []).map((field) => {
      const path = parsePath(field.path);
      return { path, action: field.action ?? action, label: field.label ?? defaultLabel(path), rule: rule.name };
    }),
    dropBinary: rule.binary === 'drop',
    args: rule.args === true,
  };
}

const PLAN_CACHE_LIMIT = 1000;

/** Validated, compiled rules; `planFor` merges the rules that apply to one subject (cached). */
export class CompiledRedactionRules {
  readonly #rules: readonly CompiledRule[];
  readonly #cache = new Map<string, RedactionPlan>();

  constructor(rules: readonly CompiledRule[]) {
    this.#rules = rules;
  }

  get size(): number {
    return this.#rules.length;
  }

  planFor(subject: RedactionSubject): RedactionPlan {
    if (this.#rules.length === 0) return EMPTY_PLAN;
    const identity = subject.identity;
    const key = JSON.stringify([
      subject.upstream,
      subject.kind,
      subject.name,
      subject.namespacedName,
      identity?.subject,
      identity?.groups,
    ]);
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const plan = this.#build(subject);
    if (this.#cache.size >= PLAN_CACHE_LIMIT) this.#cache.clear();
    this.#cache.set(key, plan);
    return plan;
  }

  #build(subject: RedactionSubject): RedactionPlan {
    const applicable = this.#rules.filter(
      (rule) =>
        (rule.match === undefined || matches(rule.match, subject, true)) &&
        (rule.except === undefined || !matches(rule.except, subject, false)),
    );
    if (applicable.length === 0) return EMPTY_PLAN;
    const builtin = new Map<string, { action: RedactionAction; rule: string }>();
    const custom: ActiveDetector[] = [];
    const fields: CompiledFieldRule[] = [];
    let binaryRule: string | undefined;
    let args = false;
    for (const rule of applicable) {
      for (const ref of rule.detectors) {
        const existing = builtin.get(ref.id);
        if (existing === undefined || strongerAction(existing.action, ref.action) !== existing.action) {
          builtin.set(ref.id, { action: ref.action, rule: rule.name });
        }
      }
      custom.push(...rule.custom);
      fields.push(...rule.fields);
      if (rule.dropBinary && binaryRule === undefined) binaryRule = rule.name;
      args ||= rule.args;
    }
    const detectors: ActiveDetector[] = [
      ...[...builtin].map(([id, { action, rule }]) => ({
        detector: BUILTIN_DETECTORS[id as BuiltinDetectorId],
        action,
        rule,
      })),
      ...custom,
    ];
    return Object.freeze({
      detectors: Object.freeze(detectors),
      fields: Object.freeze(fields),
      dropBinary: binaryRule !== undefined,
      binaryRule,
      args,
      rules: Object.freeze(applicable.map((rule) => rule.name)),
      empty: detectors.length === 0 && fields.length === 0 && binaryRule === undefined,
    });
  }
}

/**
 * Validates and compiles rules (raw input as in the policy document). Throws a `PortcullisError`
 * with code `redaction.invalid_rules` whose message names every offending rule.
 */
export function compileRedactionRules(input: unknown): CompiledRedactionRules {
  const validation = validateRedactionRules(input);
  if (!validation.ok) {
    throw new PortcullisError(
      'redaction.invalid_rules',
      `invalid redaction rules: ${validation.issues.map((issue) => issue.message).join('; ')}`,
    );
  }
  return new CompiledRedactionRules(validation.rules.map(compileRule));
}
