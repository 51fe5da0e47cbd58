import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { Environment, type ParseResult } from '@marcbachmann/cel-js';
import { type ConfigIssue, formatIssues, formatPath, parseYamlWithSchema, type YamlLocator } from '@portcullis/config';
import { PortcullisError } from '@portcullis/core';
import { type CompiledRedactionRules, compileRedactionRules } from '@portcullis/redact';
import { parse as parseYaml } from 'yaml';
import { compileGlobs, type GlobSet } from './glob.js';
import {
  type ApproveSpec,
  type ConfirmSpec,
  durationMs,
  type PolicyAction,
  type PolicyDocument,
  type PolicyRule,
  PolicySchema,
} from './schema.js';

/** What a policy decides about: a tool call, a prompt, or a resource. */
export type TargetKind = 'tool' | 'prompt' | 'resource';
export const TARGET_KINDS: readonly TargetKind[] = ['tool', 'prompt', 'resource'];

/** One problem in a policy file: where it is and why it is wrong (the config loader's format). */
export type PolicyIssue = ConfigIssue;

/** A policy that cannot be used. The message names the file, each place and each reason. */
export class PolicyError extends PortcullisError {
  readonly file: string;
  readonly issues: readonly PolicyIssue[];

  constructor(file: string, issues: readonly PolicyIssue[], options?: { cause?: unknown }) {
    super('policy.invalid', formatIssues(file, issues), options);
    this.name = 'PolicyError';
    this.file = file;
    this.issues = issues;
  }
}

/** Approval settings with the timeout resolved. */
export interface ResolvedApprove extends ApproveSpec {
  readonly timeoutMs: number;
}

/** What a rule (or the default) does when it decides. */
export interface CompiledAction {
  readonly action: PolicyAction;
  readonly reason: string | null;
  readonly approve: ResolvedApprove | null;
  readonly confirm: ConfirmSpec | null;
}

/** A CEL condition compiled once per policy version. */
export interface CompiledCondition {
  readonly source: string;
  readonly run: (variables: Record<string, unknown>) => unknown;
}

export interface CompiledRule extends CompiledAction {
  /** Position in the file (0-based), the order ties are broken in. */
  readonly index: number;
  readonly name: string;
  readonly mode: 'enforce' | 'audit';
  /** The kinds the rule applies to. */
  readonly kinds: ReadonlySet<TargetKind>;
  readonly upstream: GlobSet | null;
  /** Name globs per kind; absent for a kind: any name of that kind. */
  readonly names: Readonly<Partial<Record<TargetKind, GlobSet>>>;
  readonly subject: GlobSet | null;
  readonly groups: GlobSet | null;
  readonly condition: CompiledCondition | null;
  readonly source: PolicyRule;
}

/** A policy ready to evaluate: immutable, shared by every request until the next version. */
export interface CompiledPolicy {
  /** Recorded with every decision. Given by whoever stores versions, else a hash of the document. */
  readonly version: string;
  readonly document: PolicyDocument;
  readonly rules: readonly CompiledRule[];
  readonly defaultAction: CompiledAction;
  /** Redaction rules as written (`redact:`, validated), absent when the document has none. */
  readonly redact: PolicyDocument['redact'];
  /** The `redact:` section compiled for the redaction engine (`new Redactor({ rules: () => policy.redaction })`). */
  readonly redaction: CompiledRedactionRules;
}

export interface CompileOptions {
  /** The policy version (e.g. the store's version number); default `sha256:<first 16 hex of the document>`. */
  readonly version?: string;
  /** Names the file in errors. */
  readonly file?: string;
  /** Places errors found after the schema (CEL) in the file. */
  readonly locate?: YamlLocator;
}

/** The CEL variables a condition may use. `unlistedVariablesAreDyn` stays off: an unknown name is an error. */
let celEnvironment: Environment | undefined;
function environment(): Environment {
  celEnvironment ??= new Environment({ homogeneousAggregateLiterals: false })
    .registerVariable('identity', 'map')
    .registerVariable('upstream', 'string')
    .registerVariable('tool', 'string')
    .registerVariable('kind', 'string')
    .registerVariable('name', 'string')
    .registerVariable('uri', 'string')
    .registerVariable('args', 'map')
    .registerVariable('now', 'google.protobuf.Timestamp');
  return celEnvironment;
}

/** The CEL variables a condition sees, by name (documented in docs/policy.md). */
export const CEL_VARIABLES = ['identity', 'upstream', 'tool', 'kind', 'name', 'uri', 'args', 'now'] as const;

interface CelErrorLike {
  readonly summary?: string;
  readonly message: string;
  readonly range?: { readonly start: number; readonly end: number };
}

function isCelError(error: unknown): error is Error & CelErrorLike {
  return error instanceof Error && ('summary' in error || 'range' in error);
}

/** `line L, column C` of an offset inside an expression (1-based). */
function expressionPlace(source: string, offset: number): string {
  const before = source.slice(0, offset);
  const line = before.split('\n').length;
  const column = offset - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}

function describeCelError(kind: string, rule: string, source: string, error: unknown): string {
  if (isCelError(error)) {
    const summary = error.summary ?? error.message.split('\n')[0] ?? error.message;
    const place = error.range ? ` at ${expressionPlace(source, error.range.start)} of the condition` : '';
    return `${kind} in rule "${rule}"${place}: ${summary}`;
  }
  return `${kind} in rule "${rule}": ${error instanceof Error ? error.message : String(error)}`;
}

function compileCondition(rule: PolicyRule): { condition: CompiledCondition } | { error: string } {
  const source = rule.when;
  if (source === undefined) return { error: 'no condition' };
  let parsed: ParseResult;
  try {
    parsed = environment().parse(source);
  } catch (error) {
    return { error: describeCelError('CEL syntax error', rule.name, source, error) };
  }
  const checked = parsed.check();
  if (!checked.valid) return { error: describeCelError('CEL type error', rule.name, source, checked.error) };
  if (checked.type !== 'bool' && checked.type !== 'dyn') {
    return { error: `CEL type error in rule "${rule.name}": the condition is a ${checked.type}, not a bool` };
  }
  return { condition: { source, run: (variables) => parsed(variables) } };
}

function compileAction(value: {
  action: PolicyAction;
  reason?: string | undefined;
  approve?: ApproveSpec | undefined;
  confirm?: ConfirmSpec | undefined;
}): CompiledAction {
  return {
    action: value.action,
    reason: value.reason ?? null,
    approve: value.approve ? Object.freeze({ ...value.approve, timeoutMs: durationMs(value.approve.timeout) }) : null,
    confirm: value.confirm ? Object.freeze({ ...value.confirm }) : null,
  };
}

function ruleKinds(rule: PolicyRule): Set<TargetKind> {
  const named = TARGET_KINDS.filter((kind) => rule.match[kind] !== undefined);
  if (named.length > 0) return new Set(named);
  // Holds and confirmations exist for tool calls only.
  if (rule.action === 'approve' || rule.action === 'confirm') return new Set(['tool']);
  return new Set(TARGET_KINDS);
}

function optionalGlobs(patterns: string | readonly string[] | undefined): GlobSet | null {
  return patterns === undefined ? null : compileGlobs(patterns);
}

function documentVersion(document: PolicyDocument): string {
  return `sha256:${createHash('sha256').update(JSON.stringify(document)).digest('hex').slice(0, 16)}`;
}

/** Compiles a validated document: globs and CEL once per version. Throws `PolicyError` naming each bad condition. */
export function compilePolicy(document: PolicyDocument, options: CompileOptions = {}): CompiledPolicy {
  const issues: PolicyIssue[] = [];
  const rules: CompiledRule[] = [];
  document.rules.forEach((rule, index) => {
    let condition: CompiledCondition | null = null;
    if (rule.when !== undefined) {
      const compiled = compileCondition(rule);
      if ('error' in compiled) {
        const path = ['rules', index, 'when'];
        const position = options.locate?.(path);
        issues.push({ path: formatPath(path), line: position?.line, column: position?.column, reason: compiled.error });
        return;
      }
      condition = compiled.condition;
    }
    const names: Partial<Record<TargetKind, GlobSet>> = {};
    for (const kind of TARGET_KINDS) {
      const patterns = rule.match[kind];
      if (patterns !== undefined) names[kind] = compileGlobs(patterns);
    }
    rules.push(
      Object.freeze({
        index,
        name: rule.name,
        mode: rule.mode,
        ...compileAction(rule),
        kinds: ruleKinds(rule),
        upstream: optionalGlobs(rule.match.upstream),
        names: Object.freeze(names),
        subject: optionalGlobs(rule.match.subject),
        groups: optionalGlobs(rule.match.groups),
        condition,
        source: rule,
      }),
    );
  });
  let redaction: CompiledRedactionRules | undefined;
  try {
    redaction = compileRedactionRules(document.redact ?? []);
  } catch (error) {
    // The schema validated the section already; this is a rule the schema could not judge.
    const position = options.locate?.(['redact']);
    issues.push({
      path: 'redact',
      line: position?.line,
      column: position?.column,
      reason: error instanceof Error ? error.message : String(error),
    });
  }
  if (issues.length > 0 || redaction === undefined) throw new PolicyError(options.file ?? '<policy>', issues);
  return Object.freeze({
    version: options.version ?? documentVersion(document),
    document,
    rules: Object.freeze(rules),
    defaultAction: Object.freeze(compileAction(document.default)),
    redact: document.redact,
    redaction,
  });
}

const REDACT_RULE_PATH = /^redact\[(\d+)\]/;

/**
 * Issues inside `redact:` name their rule (`rule "<name>": …`) — the redaction schema names it in
 * its own checks (paths, patterns); the structural ones (an unknown key, a wrong type) get it here.
 */
function nameRedactionRules(text: string, issues: readonly PolicyIssue[]): readonly PolicyIssue[] {
  if (!issues.some((issue) => REDACT_RULE_PATH.test(issue.path))) return issues;
  let rules: unknown;
  try {
    rules = (parseYaml(text) as { redact?: unknown } | null)?.redact;
  } catch {
    return issues;
  }
  return issues.map((issue) => {
    const index = REDACT_RULE_PATH.exec(issue.path)?.[1];
    if (index === undefined || issue.reason.startsWith('rule "') || !Array.isArray(rules)) return issue;
    const name = (rules[Number(index)] as { name?: unknown } | undefined)?.name;
    return typeof name === 'string' ? { ...issue, reason: `rule "${name}": ${issue.reason}` } : issue;
  });
}

/** Parses YAML and validates it against `PolicySchema`. Throws `PolicyError`. */
export function parsePolicy(text: string, file: string): PolicyDocument {
  const parsed = parseYamlWithSchema(text, PolicySchema);
  if (!parsed.ok) throw new PolicyError(file, nameRedactionRules(text, parsed.issues));
  return parsed.value;
}

/** Parses, validates and compiles a policy file's text. Throws `PolicyError` naming file, line, path and reason. */
export function loadPolicy(
  text: string,
  file: string,
  options: Omit<CompileOptions, 'file' | 'locate'> = {},
): CompiledPolicy {
  const parsed = parseYamlWithSchema(text, PolicySchema);
  if (!parsed.ok) throw new PolicyError(file, nameRedactionRules(text, parsed.issues));
  return compilePolicy(parsed.value, { ...options, file, locate: parsed.locate });
}

/** Every problem in a policy file's text; empty when it is valid. Never throws. */
export function validatePolicy(text: string, file: string): readonly PolicyIssue[] {
  try {
    loadPolicy(text, file);
    return [];
  } catch (error) {
    if (error instanceof PolicyError) return error.issues;
    return [
      { path: '', line: undefined, column: undefined, reason: error instanceof Error ? error.message : String(error) },
    ];
  }
}

/** Reads and compiles a policy file. Throws `PolicyError` (also for a missing or unreadable file). */
export async function loadPolicyFile(
  file: string,
  options: Omit<CompileOptions, 'file' | 'locate'> = {},
): Promise<CompiledPolicy> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : 'cannot be read';
    throw new PolicyError(file, [{ path: '', line: undefined, column: undefined, reason }], { cause: error });
  }
  return loadPolicy(text, file, options);
}
