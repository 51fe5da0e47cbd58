import { canonicalName, type Identity } from '@portcullis/core';
import type { CompiledAction, CompiledPolicy, CompiledRule, ResolvedApprove, TargetKind } from './compile.js';
import { canonicalUri } from './glob.js';
import type { ConfirmSpec, PolicyAction } from './schema.js';

/** One call the policy decides about. */
export interface PolicyRequest {
  readonly kind: TargetKind;
  readonly identity: Identity;
  /** The upstream's configured name. */
  readonly upstream: string;
  /** The tool or prompt name, or the resource URI, as the upstream knows it. */
  readonly name: string;
  /** The same as the agent sees it (namespaced). */
  readonly namespacedName: string;
  /** The call's arguments (`tools/call`, `prompts/get`); `{}` when absent. */
  readonly args?: Readonly<Record<string, unknown>>;
  /** The clock the conditions see as `now`; default the current time. */
  readonly now?: Date;
}

/**
 * Combination order, strongest first. The decision is the strongest action among the enforced
 * rules that matched; among equals the first rule in the file decides. A condition that fails at
 * run time counts as a matched `deny` (fail closed). No enforced rule matched: the default action.
 */
export const ACTION_PRECEDENCE: readonly PolicyAction[] = ['hide', 'deny', 'approve', 'confirm', 'allow'];
const RANK: Readonly<Record<PolicyAction, number>> = { hide: 5, deny: 4, approve: 3, confirm: 2, allow: 1 };

/** Why a rule did not match: the first criterion that failed, in the order they are checked. */
export type MatchFailure = 'kind' | 'upstream' | 'name' | 'subject' | 'groups' | 'condition';

export interface RuleTrace {
  readonly rule: string;
  readonly mode: 'enforce' | 'audit';
  readonly action: PolicyAction;
  readonly outcome: 'matched' | 'not-matched' | 'error';
  readonly failed: MatchFailure | null;
  /** The condition's run-time error (outcome `error`). */
  readonly error: string | null;
}

export interface DecisionRequest {
  readonly kind: TargetKind;
  readonly upstream: string;
  readonly name: string;
  readonly namespacedName: string;
  readonly subject: string;
  readonly groups: readonly string[];
}

export interface ShadowDecision {
  /** The decision had the audit rules been enforced too. */
  readonly decision: PolicyAction;
  readonly rule: string | null;
  /** The audit rules that matched (or failed), in file order. */
  readonly auditRules: readonly string[];
}

/**
 * The outcome of evaluating a policy for one request: plain data (JSON round-trips unchanged),
 * frozen, recorded with the call. `null` marks an absent value.
 */
export interface Decision {
  readonly decision: PolicyAction;
  /** `rule`: an enforced rule decided; `default`: none matched; `error`: the policy could not be evaluated. */
  readonly basis: 'rule' | 'default' | 'error';
  /** The deciding rule. */
  readonly rule: string | null;
  /** For `deny` (and `confirm`): the reason the agent sees. */
  readonly reason: string | null;
  readonly approve: ResolvedApprove | null;
  readonly confirm: ConfirmSpec | null;
  readonly policyVersion: string;
  readonly request: DecisionRequest;
  /** Every rule in file order: matched, or why not. */
  readonly trace: readonly RuleTrace[];
  /** Present when an audit rule matched. */
  readonly shadow: ShadowDecision | null;
  /** Run-time condition errors, by rule. */
  readonly errors: readonly { readonly rule: string; readonly error: string }[];
}

/** The reason the agent sees when a rule denies without giving one. */
export function defaultDenyReason(rule: string | null): string {
  return rule === null ? 'denied by policy: no rule allows this call' : `denied by policy rule "${rule}"`;
}

interface Candidates {
  readonly upstream: string;
  readonly name: string;
  readonly namespacedName: string;
  readonly subject: string;
  readonly groups: readonly string[];
}

function canonicalCandidates(request: Omit<PolicyRequest, 'args' | 'now'>): Candidates {
  const canonical = request.kind === 'resource' ? canonicalUri : canonicalName;
  return {
    upstream: canonicalName(request.upstream),
    name: canonical(request.name),
    namespacedName: canonical(request.namespacedName),
    subject: canonicalName(request.identity.subject),
    groups: request.identity.groups.map(canonicalName),
  };
}

/** The static part of a rule's match (everything but the condition). */
function staticMismatch(rule: CompiledRule, kind: TargetKind, c: Candidates): MatchFailure | null {
  if (!rule.kinds.has(kind)) return 'kind';
  if (rule.upstream !== null && !rule.upstream.test(c.upstream)) return 'upstream';
  const names = rule.names[kind];
  if (names !== undefined && !names.test(c.name) && !names.test(c.namespacedName)) return 'name';
  if (rule.subject !== null && !rule.subject.test(c.subject)) return 'subject';
  const groups = rule.groups;
  if (groups !== null && !c.groups.some((group) => groups.test(group))) return 'groups';
  return null;
}

function celVariables(request: PolicyRequest, c: Candidates): Record<string, unknown> {
  const identity = request.identity;
  return {
    identity: {
      subject: identity.subject,
      groups: identity.groups,
      authMethod: identity.authMethod,
      claims: identity.claims,
    },
    upstream: c.upstream,
    tool: request.kind === 'resource' ? '' : c.name,
    kind: request.kind,
    name: request.kind === 'resource' ? '' : c.namespacedName,
    uri: request.kind === 'resource' ? request.name : '',
    args: request.args ?? {},
    now: request.now ?? new Date(),
  };
}

function describeRuntimeError(error: unknown): string {
  if (error instanceof Error) {
    const summary = (error as { summary?: unknown }).summary;
    return typeof summary === 'string' ? summary : (error.message.split('\n')[0] ?? error.name);
  }
  return String(error);
}

/** Runs a condition: true, false, or the error it failed with (a non-bool result is an error). */
function runCondition(rule: CompiledRule, variables: Record<string, unknown>): boolean | { error: string } {
  const condition = rule.condition;
  if (condition === null) return true;
  try {
    const value = condition.run(variables);
    if (typeof value === 'boolean') return value;
    return { error: `the condition returned ${value === null ? 'null' : typeof value}, not a bool` };
  } catch (error) {
    return { error: describeRuntimeError(error) };
  }
}

function outcomeOf(
  action: CompiledAction,
  decision: PolicyAction,
  rule: string | null,
): Pick<Decision, 'reason' | 'approve' | 'confirm'> {
  return {
    reason: decision === 'deny' || decision === 'confirm' ? (action.reason ?? defaultDenyReason(rule)) : null,
    approve: action.approve,
    confirm: action.confirm,
  };
}

function freezeDecision(decision: Decision): Decision {
  Object.freeze(decision.request.groups);
  Object.freeze(decision.request);
  for (const entry of decision.trace) Object.freeze(entry);
  Object.freeze(decision.trace);
  for (const entry of decision.errors) Object.freeze(entry);
  Object.freeze(decision.errors);
  if (decision.shadow) {
    Object.freeze(decision.shadow.auditRules);
    Object.freeze(decision.shadow);
  }
  return Object.freeze(decision);
}

/** Evaluates every rule for one request and combines them (see `ACTION_PRECEDENCE`). Never throws. */
export function evaluate(policy: CompiledPolicy, request: PolicyRequest): Decision {
  let candidates: Candidates;
  try {
    candidates = canonicalCandidates(request);
  } catch (error) {
    return failedDecision(policy, request, error);
  }
  const trace: RuleTrace[] = [];
  const errors: { rule: string; error: string }[] = [];
  let variables: Record<string, unknown> | undefined;
  let winner: CompiledRule | undefined;
  let winnerAction: PolicyAction = 'allow';
  let winnerErrored = false;
  let shadowWinner: CompiledRule | undefined;
  let shadowAction: PolicyAction = 'allow';
  let auditRules: string[] | undefined;

  for (const rule of policy.rules) {
    const failed = staticMismatch(rule, request.kind, candidates);
    if (failed !== null) {
      trace.push({
        rule: rule.name,
        mode: rule.mode,
        action: rule.action,
        outcome: 'not-matched',
        failed,
        error: null,
      });
      continue;
    }
    let effective: PolicyAction = rule.action;
    let errored = false;
    if (rule.condition !== null) {
      variables ??= celVariables(request, candidates);
      const result = runCondition(rule, variables);
      if (result === false) {
        trace.push({
          rule: rule.name,
          mode: rule.mode,
          action: rule.action,
          outcome: 'not-matched',
          failed: 'condition',
          error: null,
        });
        continue;
      }
      if (result !== true) {
        errors.push({ rule: rule.name, error: result.error });
        trace.push({
          rule: rule.name,
          mode: rule.mode,
          action: rule.action,
          outcome: 'error',
          failed: null,
          error: result.error,
        });
        // Fail closed: a condition that cannot be evaluated denies.
        effective = 'deny';
        errored = true;
      } else {
        trace.push({
          rule: rule.name,
          mode: rule.mode,
          action: rule.action,
          outcome: 'matched',
          failed: null,
          error: null,
        });
      }
    } else {
      trace.push({
        rule: rule.name,
        mode: rule.mode,
        action: rule.action,
        outcome: 'matched',
        failed: null,
        error: null,
      });
    }
    if (shadowWinner === undefined || RANK[effective] > RANK[shadowAction]) {
      shadowWinner = rule;
      shadowAction = effective;
    }
    if (rule.mode === 'audit') {
      auditRules ??= [];
      auditRules.push(rule.name);
      continue;
    }
    if (winner === undefined || RANK[effective] > RANK[winnerAction]) {
      winner = rule;
      winnerAction = effective;
      winnerErrored = errored;
    }
  }

  const decisionRequest: DecisionRequest = {
    kind: request.kind,
    upstream: request.upstream,
    name: request.name,
    namespacedName: request.namespacedName,
    subject: request.identity.subject,
    groups: [...request.identity.groups],
  };
  const deciding = winner === undefined ? policy.defaultAction : winner;
  let action = winner === undefined ? policy.defaultAction.action : winnerAction;
  const ruleName = winner?.name ?? null;
  let outcome: Pick<Decision, 'reason' | 'approve' | 'confirm'>;
  if (winnerErrored) {
    outcome = { reason: `denied: policy rule "${ruleName}" could not be evaluated`, approve: null, confirm: null };
  } else if (request.kind !== 'tool' && (action === 'approve' || action === 'confirm')) {
    // Only the default can get here (rules that hold apply to tools only): holds exist for tool calls alone.
    outcome = { reason: `denied by policy: ${action} applies to tool calls only`, approve: null, confirm: null };
    action = 'deny';
  } else {
    outcome = outcomeOf(deciding, action, ruleName);
  }
  let shadow: ShadowDecision | null = null;
  if (auditRules !== undefined) {
    const shadowAct = shadowWinner === undefined ? policy.defaultAction.action : shadowAction;
    shadow = { decision: shadowAct, rule: shadowWinner?.name ?? null, auditRules };
  }
  return freezeDecision({
    decision: action,
    basis: winner === undefined ? 'default' : 'rule',
    rule: ruleName,
    ...outcome,
    policyVersion: policy.version,
    request: decisionRequest,
    trace,
    shadow,
    errors,
  });
}

/** The fail-closed decision when a request cannot be evaluated at all. */
export function failedDecision(policy: CompiledPolicy | undefined, request: PolicyRequest, error: unknown): Decision {
  const message = describeRuntimeError(error);
  return freezeDecision({
    decision: 'deny',
    basis: 'error',
    rule: null,
    reason: 'denied: the policy could not be evaluated',
    approve: null,
    confirm: null,
    policyVersion: policy?.version ?? 'unavailable',
    request: {
      kind: request.kind,
      upstream: request.upstream,
      name: request.name,
      namespacedName: request.namespacedName,
      subject: request.identity.subject,
      groups: [...request.identity.groups],
    },
    trace: [],
    shadow: null,
    errors: [{ rule: '', error: message }],
  });
}

/** A list item (tool, prompt, resource or resource template) as the listing filter sees it. */
export interface ListedItem {
  readonly kind: TargetKind;
  readonly upstream: string;
  readonly name: string;
  readonly namespacedName: string;
}

/**
 * Whether a list item is absent for this identity: an enforced `hide` rule matches it (its condition,
 * if any, is evaluated with empty `args`; an error hides — fail closed), or no other enforced rule
 * could match it and the default action is `hide`. A call to a hidden item is decided `hide` too.
 */
export function isHidden(
  policy: CompiledPolicy,
  identity: Identity,
  item: ListedItem,
  now: Date = new Date(),
): boolean {
  const request: PolicyRequest = { ...item, identity, args: {}, now };
  let candidates: Candidates;
  try {
    candidates = canonicalCandidates(request);
  } catch {
    return true;
  }
  let otherMatched = false;
  let variables: Record<string, unknown> | undefined;
  for (const rule of policy.rules) {
    if (rule.mode === 'audit') continue;
    if (staticMismatch(rule, item.kind, candidates) !== null) continue;
    if (rule.action !== 'hide') {
      otherMatched = true;
      continue;
    }
    if (rule.condition === null) return true;
    variables ??= celVariables(request, candidates);
    if (runCondition(rule, variables) !== false) return true;
  }
  return !otherMatched && policy.defaultAction.action === 'hide';
}
