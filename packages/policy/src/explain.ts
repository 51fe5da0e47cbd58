import type { CompiledPolicy, CompiledRule, TargetKind } from './compile.js';
import { type Decision, evaluate, type PolicyRequest, type RuleTrace } from './evaluate.js';

const KIND_WORD: Readonly<Record<TargetKind, string>> = { tool: 'tool', prompt: 'prompt', resource: 'resource' };
const KIND_PLURAL: Readonly<Record<TargetKind, string>> = {
  tool: 'tool calls',
  prompt: 'prompts',
  resource: 'resources',
};

function list(patterns: readonly string[]): string {
  return patterns.map((p) => JSON.stringify(p)).join(', ');
}

function whyNot(rule: CompiledRule, entry: RuleTrace, request: PolicyRequest): string {
  switch (entry.failed) {
    case 'kind':
      return `applies to ${[...rule.kinds].map((k) => KIND_PLURAL[k]).join(', ')}, not to ${KIND_PLURAL[request.kind]}`;
    case 'upstream':
      return `upstream ${JSON.stringify(request.upstream)} does not match ${list(rule.upstream?.sources ?? [])}`;
    case 'name':
      return `${KIND_WORD[request.kind]} ${JSON.stringify(request.name)} (as the agent sees it ${JSON.stringify(request.namespacedName)}) does not match ${list(rule.names[request.kind]?.sources ?? [])}`;
    case 'subject':
      return `subject ${JSON.stringify(request.identity.subject)} does not match ${list(rule.subject?.sources ?? [])}`;
    case 'groups':
      return request.identity.groups.length === 0
        ? `no groups; needs one matching ${list(rule.groups?.sources ?? [])}`
        : `groups ${list(request.identity.groups)} do not match ${list(rule.groups?.sources ?? [])}`;
    case 'condition':
      return `condition is false: ${rule.condition?.source.trim() ?? ''}`;
    default:
      return 'did not match';
  }
}

function ruleLine(rule: CompiledRule, entry: RuleTrace, request: PolicyRequest, decision: Decision): string {
  const head = `  ${rule.index + 1}. ${rule.name} [${rule.action}${rule.mode === 'audit' ? ', audit' : ''}]`;
  if (entry.outcome === 'not-matched') return `${head} no match: ${whyNot(rule, entry, request)}`;
  const matched = entry.outcome === 'error' ? `condition failed: ${entry.error} (counts as deny)` : 'matched';
  if (rule.mode === 'audit') return `${head} ${matched}; audit rule, recorded, not enforced`;
  if (decision.rule === rule.name) return `${head} ${matched}; DECIDES`;
  return `${head} ${matched}; outranked by "${decision.rule}" (${decision.decision})`;
}

/**
 * The human-readable account of a decision: the decision, the rule that decided, and for every
 * other rule whether it matched and why not (what `portcullis policy explain` prints).
 */
export function formatDecision(policy: CompiledPolicy, request: PolicyRequest, decision: Decision): string {
  const lines: string[] = [];
  lines.push(`decision: ${decision.decision}`);
  if (decision.basis === 'rule') {
    lines.push(`decided by: rule "${decision.rule}"`);
  } else if (decision.basis === 'default') {
    lines.push('decided by: the default action (no enforced rule matched)');
  } else {
    lines.push('decided by: failure to evaluate the policy (fail closed)');
  }
  if (decision.reason !== null) lines.push(`reason the agent sees: ${decision.reason}`);
  if (decision.approve !== null) {
    const reviewers = [
      ...decision.approve.reviewers.groups.map((g) => `group ${g}`),
      ...decision.approve.reviewers.subjects.map((s) => `subject ${s}`),
    ].join(', ');
    lines.push(
      `approval: ${decision.approve.count} of ${reviewers}; timeout ${decision.approve.timeout}, then ${decision.approve.onTimeout}`,
    );
  }
  if (decision.confirm !== null) lines.push(`confirm: ask the agent's user, otherwise ${decision.confirm.otherwise}`);
  lines.push(`policy version: ${decision.policyVersion}`);
  const identity = request.identity;
  lines.push(
    `request: ${KIND_WORD[request.kind]} ${request.namespacedName} (upstream ${request.upstream}, its name ${request.name}) as ${identity.subject}${identity.groups.length > 0 ? ` in groups ${identity.groups.join(', ')}` : ''}`,
  );
  if (request.args !== undefined && Object.keys(request.args).length > 0)
    lines.push(`args: ${JSON.stringify(request.args)}`);
  lines.push('rules:');
  if (policy.rules.length === 0) lines.push('  (none)');
  policy.rules.forEach((rule, position) => {
    const entry = decision.trace[position];
    if (entry !== undefined) lines.push(ruleLine(rule, entry, request, decision));
  });
  lines.push(`default: ${policy.defaultAction.action}${decision.basis === 'default' ? '; DECIDES' : ''}`);
  if (decision.shadow !== null) {
    const by = decision.shadow.rule === null ? 'the default' : `rule "${decision.shadow.rule}"`;
    lines.push(`shadow decision (audit rules enforced too): ${decision.shadow.decision} by ${by}`);
  }
  for (const error of decision.errors) lines.push(`error: ${error.rule ? `rule "${error.rule}": ` : ''}${error.error}`);
  return lines.join('\n');
}

/** Evaluates `request` and explains the decision. */
export function explain(policy: CompiledPolicy, request: PolicyRequest): { decision: Decision; text: string } {
  const decision = evaluate(policy, request);
  return { decision, text: formatDecision(policy, request, decision) };
}
