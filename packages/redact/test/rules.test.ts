import { configuredIdentity, PortcullisError } from '@portcullis/core';
import { describe, expect, it } from 'vitest';
import { compileRedactionRules, RedactionRulesSchema, validateRedactionRules } from '../src/index.js';

const support = configuredIdentity('sam', ['support']);
const admin = configuredIdentity('ada', ['admins']);

describe('RedactionRulesSchema', () => {
  it('accepts the documented forms', () => {
    const rules = [
      { name: 'defaults', detectors: 'default' },
      {
        name: 'crm',
        match: { upstreams: ['crm'], tools: ['lookup_*'], groups: ['support'] },
        except: { subjects: ['ada'] },
        detectors: ['card', { id: 'email', action: 'partial' }],
        custom: [{ id: 'employee-id', pattern: 'EMP-[0-9]{6}', validator: 'luhn', action: 'hash' }],
        fields: [
          { path: '$.rows[*].ssn', action: 'mask' },
          { path: '$..password', action: 'drop', label: 'password' },
        ],
        action: 'mask',
        binary: 'drop',
        args: true,
      },
    ];
    expect(RedactionRulesSchema.safeParse(rules).success).toBe(true);
  });

  it('names the rule of an invalid path', () => {
    const result = validateRedactionRules([{ name: 'bad-path', fields: [{ path: '$.a[?(@.x)]' }] }]);
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues[0]!.rule).toBe('bad-path');
    expect(result.issues[0]!.path).toEqual([0, 'fields', 0, 'path']);
    expect(result.issues[0]!.message).toMatch(
      /^rule "bad-path": invalid path "\$\.a\[\?\(@\.x\)\]": filter expressions/,
    );
  });

  it('names the rule of an invalid or unsafe pattern', () => {
    for (const pattern of ['(a', '(a)\\1', '(?<=x)y', 'a*', 'x{1001}']) {
      const result = validateRedactionRules([{ name: 'bad-pattern', custom: [{ id: 'x', pattern }] }]);
      expect(result.ok, pattern).toBe(false);
      if (!result.ok) expect(result.issues[0]!.message).toMatch(/^rule "bad-pattern": invalid pattern for "x": /);
    }
  });

  it('names the rule for other mistakes, and rejects unknown keys and duplicate names', () => {
    const unknown = validateRedactionRules([{ name: 'typo', detector: ['email'] }]);
    expect(unknown.ok).toBe(false);
    if (!unknown.ok) expect(unknown.issues[0]!.message).toMatch(/^rule "typo": /);
    const bad = validateRedactionRules([{ name: 'r', detectors: ['emails'] }]);
    expect(bad.ok).toBe(false);
    const dup = validateRedactionRules([{ name: 'r' }, { name: 'r' }]);
    expect(dup.ok).toBe(false);
    if (!dup.ok) expect(dup.issues[0]!.message).toBe('rule "r": duplicate rule name');
    const taken = validateRedactionRules([{ name: 'r', custom: [{ id: 'email', pattern: 'x' }] }]);
    expect(taken.ok).toBe(false);
  });

  it('compileRedactionRules throws redaction.invalid_rules naming the rule', () => {
    expect(() => compileRedactionRules([{ name: 'oops', fields: [{ path: 'nope' }] }])).toThrow(PortcullisError);
    try {
      compileRedactionRules([{ name: 'oops', fields: [{ path: 'nope' }] }]);
    } catch (error) {
      expect((error as PortcullisError).code).toBe('redaction.invalid_rules');
      expect((error as PortcullisError).message).toContain('rule "oops"');
    }
  });
});

describe('rule matching', () => {
  const rules = compileRedactionRules([
    { name: 'cards-everywhere', detectors: ['card'] },
    { name: 'emails-not-for-support', detectors: ['email'], except: { groups: ['support'] } },
    { name: 'crm-lookup', match: { upstreams: ['crm'], tools: ['lookup*'] }, fields: [{ path: '$.ssn' }] },
    { name: 'hr-prompts', match: { prompts: ['hr__*'] }, detectors: ['phone'], action: 'hash' },
    { name: 'vault-resources', match: { resources: ['vault://*'] }, binary: 'drop' },
    { name: 'admins-args', match: { groups: ['admins'] }, args: true, detectors: [{ id: 'card', action: 'partial' }] },
  ]);
  const ids = (plan: { detectors: readonly { detector: { id: string }; action: string; rule: string }[] }) =>
    plan.detectors.map((d) => `${d.detector.id}:${d.action}:${d.rule}`).sort();

  it('the support group sees e-mail addresses but never card numbers', () => {
    const plan = rules.planFor({ upstream: 'crm', kind: 'tool', name: 'get', identity: support });
    expect(ids(plan)).toEqual(['card:mask:cards-everywhere']);
    const other = rules.planFor({ upstream: 'crm', kind: 'tool', name: 'get', identity: admin });
    expect(ids(other)).toEqual(['card:mask:cards-everywhere', 'email:mask:emails-not-for-support']);
  });

  it('the strongest action wins when rules disagree', () => {
    const plan = rules.planFor({ upstream: 'x', kind: 'tool', name: 't', identity: admin });
    expect(plan.detectors.find((d) => d.detector.id === 'card')?.action).toBe('mask');
    expect(plan.args).toBe(true);
    expect(rules.planFor({ upstream: 'x', kind: 'tool', name: 't', identity: support }).args).toBe(false);
  });

  it('matches upstream and tool names (original or namespaced, globbed, case-folded)', () => {
    expect(
      rules.planFor({ upstream: 'crm', kind: 'tool', name: 'lookup_customer', identity: support }).fields,
    ).toHaveLength(1);
    expect(
      rules.planFor({ upstream: 'crm', kind: 'tool', name: 'x', namespacedName: 'LOOKUP', identity: support }).fields,
    ).toHaveLength(1);
    expect(
      rules.planFor({ upstream: 'erp', kind: 'tool', name: 'lookup_customer', identity: support }).fields,
    ).toHaveLength(0);
    expect(
      rules.planFor({ upstream: 'crm', kind: 'prompt', name: 'lookup_customer', identity: support }).fields,
    ).toHaveLength(0);
  });

  it('matches prompts and resources by kind', () => {
    expect(
      ids(rules.planFor({ upstream: 'u', kind: 'prompt', name: 'p', namespacedName: 'hr__p', identity: support })),
    ).toContain('phone:hash:hr-prompts');
    expect(rules.planFor({ upstream: 'u', kind: 'resource', name: 'vault://k', identity: support }).dropBinary).toBe(
      true,
    );
    expect(rules.planFor({ upstream: 'u', kind: 'tool', name: 'vault://k', identity: support }).dropBinary).toBe(false);
  });

  it('applies target-specific rules to messages not tied to a known call (fail closed), but not their exceptions', () => {
    const plan = rules.planFor({ upstream: 'crm', identity: support });
    expect(plan.fields).toHaveLength(1);
    expect(plan.dropBinary).toBe(true);
  });

  it('returns the empty plan when nothing applies', () => {
    const none = compileRedactionRules([{ name: 'only-crm', match: { upstreams: ['crm'] }, detectors: ['email'] }]);
    expect(none.planFor({ upstream: 'fs', kind: 'tool', name: 'read' }).empty).toBe(true);
    expect(compileRedactionRules([]).planFor({ upstream: 'fs' }).empty).toBe(true);
  });
});
