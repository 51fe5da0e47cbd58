import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { configuredIdentity, type Identity } from '@portcullis/core';
import { describe, expect, it } from 'vitest';
import {
  type CompiledPolicy,
  type Decision,
  evaluate,
  explain,
  isHidden,
  loadPolicy,
  loadPolicyFile,
  PolicyError,
  type PolicyRequest,
  validatePolicy,
} from '../src/index.js';

function fixture(name: string): string {
  return fileURLToPath(new URL(`fixtures/${name}`, import.meta.url));
}
function fixtureText(name: string): string {
  return readFileSync(fixture(name), 'utf8');
}

const policy = loadPolicy(fixtureText('policy.yaml'), 'policy.yaml', { version: 'v7' });
const permissive = loadPolicy(fixtureText('allow-by-default.yaml'), 'allow-by-default.yaml');

const alice = configuredIdentity('alice', ['dev']);
const carol = configuredIdentity('carol', ['contractors']);
const nobody = configuredIdentity('nobody', []);

function tool(identity: Identity, name: string, args: Record<string, unknown> = {}, upstream = 'fs'): PolicyRequest {
  return { kind: 'tool', identity, upstream, name, namespacedName: `${upstream}__${name}`, args };
}

function decide(p: CompiledPolicy, request: PolicyRequest): Decision {
  return evaluate(p, request);
}

describe('loading and validation', () => {
  it('loads the fixture file from disk', async () => {
    const loaded = await loadPolicyFile(fixture('policy.yaml'));
    expect(loaded.rules.map((r) => r.name)).toContain('block-etc');
    expect(loaded.version).toMatch(/^sha256:[0-9a-f]{16}$/);
    // The same document gives the same version.
    expect((await loadPolicyFile(fixture('policy.yaml'))).version).toBe(loaded.version);
  });

  it('names file, line, path and reason for schema errors', () => {
    const issues = validatePolicy(fixtureText('invalid.yaml'), 'invalid.yaml');
    const rendered = issues.map((i) => `${i.line}:${i.column} ${i.path}: ${i.reason}`);
    expect(rendered).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^2:\d+ default\.action: /),
        expect.stringMatching(/^4:\d+ rules\[0\]\.approve: action "approve" needs an "approve" block/),
        expect.stringMatching(/^9:7 rules\[1\]\.match: unknown key "groupz"/),
        expect.stringMatching(/^14:7 rules\[2\]\.approve: "approve" does not apply to action "deny"/),
        expect.stringMatching(/^16:16 rules\[2\]\.approve\.timeout: a duration like/),
      ]),
    );
    expect(() => loadPolicy(fixtureText('invalid.yaml'), 'invalid.yaml')).toThrow(
      /^invalid\.yaml:2:\d+ at default\.action: /,
    );
  });

  it('rejects duplicate rule names at the second one', () => {
    const issues = validatePolicy('rules:\n  - {name: a, action: allow}\n  - name: a\n    action: deny\n', 'd.yaml');
    expect(issues).toEqual([
      { path: 'rules[1].name', line: 3, column: 11, reason: 'duplicate rule name "a" (first used by rules[0])' },
    ]);
  });

  it('a CEL syntax error names its rule and the place', () => {
    let error: unknown;
    try {
      loadPolicy(fixtureText('cel-syntax-error.yaml'), 'cel-syntax-error.yaml');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(PolicyError);
    const policyError = error as PolicyError;
    expect(policyError.code).toBe('policy.invalid');
    expect(policyError.issues).toHaveLength(1);
    expect(policyError.issues[0]).toMatchObject({ path: 'rules[1].when', line: 7 });
    expect(policyError.message).toMatch(
      /^cel-syntax-error\.yaml:7:\d+ at rules\[1\]\.when: CEL syntax error in rule "broken-condition" at line 1, column 22 of the condition: /,
    );
  });

  it('rejects unknown CEL variables and non-bool conditions at compile time', () => {
    const issues = validatePolicy(
      [
        'rules:',
        '  - name: a',
        '    when: foo == 1',
        '    action: allow',
        '  - name: b',
        '    when: size(tool)',
        '    action: allow',
      ].join('\n'),
      'p.yaml',
    );
    expect(issues.map((i) => i.reason)).toEqual([
      expect.stringMatching(/CEL type error in rule "a" at line 1, column 1 of the condition: Unknown variable: foo/),
      expect.stringMatching(/CEL type error in rule "b": the condition is a int, not a bool/),
    ]);
  });

  it('reports YAML syntax errors with their position', () => {
    const issues = validatePolicy('rules:\n  - name: [unclosed\n', 'y.yaml');
    expect(issues[0]?.line).toBeDefined();
    expect(validatePolicy(fixtureText('policy.yaml'), 'policy.yaml')).toEqual([]);
  });

  it('validates and compiles the redact section for the redaction engine', () => {
    expect(permissive.redact).toEqual([{ name: 'passwords', fields: [{ path: '$..password' }], args: true }]);
    expect(permissive.redaction.size).toBe(1);
    expect(permissive.redaction.planFor({ upstream: 'fs', kind: 'tool', name: 'x' }).args).toBe(true);
    expect(loadPolicy('rules: []\n', 'empty.yaml').redaction.size).toBe(0);
  });

  it('names the redaction rule, the place and the reason of a bad redact section', () => {
    const issues = validatePolicy(
      [
        'redact:',
        '  - name: ok',
        '    detectors: [email]',
        '  - name: bad-path',
        '    fields:',
        '      - path: $.a[?(@.b)]',
        '  - name: bad-pattern',
        '    custom:',
        '      - id: emp',
        '        pattern: (a)\\1',
        '  - name: typo',
        '    detectorz: [email]',
      ].join('\n'),
      'r.yaml',
    );
    expect(issues.map((issue) => `${issue.line}:${issue.path}: ${issue.reason}`)).toEqual([
      expect.stringMatching(/^6:redact\[1\]\.fields\[0\]\.path: rule "bad-path": invalid path/),
      expect.stringMatching(/^10:redact\[2\]\.custom\[0\]\.pattern: rule "bad-pattern": invalid pattern for "emp"/),
      expect.stringMatching(/^1[12]:redact\[3\].*: rule "typo": .*detectorz/),
    ]);
  });
});

describe('matching', () => {
  it('matches a tool glob against the upstream name and against the namespaced name', () => {
    // `write_file` is written as the upstream's own name; `fs__delete_*` as the namespaced one.
    expect(decide(policy, tool(alice, 'write_file', { path: '/etc/passwd' })).rule).toBe('block-etc');
    expect(decide(policy, tool(alice, 'delete_file', { path: '/tmp/x' }))).toMatchObject({
      decision: 'approve',
      rule: 'approve-deletes',
    });
  });

  it.each([
    ['letter case', 'Write_File', 'FS__Write_File', 'FS'],
    ['fullwidth letters', 'ｗｒｉｔｅ_ｆｉｌｅ', 'ｆｓ__ｗｒｉｔｅ_ｆｉｌｅ', 'ｆｓ'],
    ['a ligature (NFKC)', 'write_ﬁle', 'fs__write_ﬁle', 'fs'],
    ['upper case and fullwidth mixed', 'ＷＲＩＴＥ_FILE', 'fs__ＷＲＩＴＥ_FILE', 'Fs'],
  ])('cannot be bypassed by %s', (_label, name, namespacedName, upstream) => {
    const decision = decide(policy, {
      kind: 'tool',
      identity: alice,
      upstream,
      name,
      namespacedName,
      args: { path: '/etc/passwd' },
    });
    expect(decision).toMatchObject({
      decision: 'deny',
      rule: 'block-etc',
      reason: 'writing under /etc is not allowed',
    });
  });

  it('canonicalises the patterns too', () => {
    const p = loadPolicy(
      'rules:\n  - name: r\n    match: {tool: "FS__Write_*"}\n    action: deny\ndefault: {action: allow}',
      'p',
    );
    expect(decide(p, tool(alice, 'write_file')).decision).toBe('deny');
  });

  it('a name with another separator is a different name', () => {
    // With the `__` separator, `fs.write_file` is not the namespaced name of fs's write_file: the
    // gateway does not route it (unknown tool) and the rule written for `fs__write_file` does not claim it.
    const p = loadPolicy(
      'rules:\n  - name: r\n    match: {tool: "fs__write_file"}\n    action: deny\ndefault: {action: allow}',
      'p',
    );
    expect(
      decide(p, { ...tool(alice, 'write_file'), namespacedName: 'fs.write_file', name: 'fs.write_file' }).decision,
    ).toBe('allow');
    expect(decide(p, tool(alice, 'write_file')).decision).toBe('deny');
  });

  it('matches subjects and groups (any group, globs)', () => {
    expect(decide(policy, tool(alice, 'list_dir'))).toMatchObject({ decision: 'allow', rule: 'allow-dev-fs' });
    expect(decide(policy, tool(configuredIdentity('bob', ['team-blue']), 'list_dir')).rule).toBe('allow-dev-fs');
    expect(decide(policy, tool(nobody, 'list_dir'))).toMatchObject({
      decision: 'deny',
      basis: 'default',
      reason: 'not allowed by the fixture policy',
    });
    expect(decide(policy, tool(configuredIdentity('CI-Bot', []), 'anything', {}, 'git'))).toMatchObject({
      decision: 'allow',
      rule: 'allow-ci-bot',
    });
  });

  it('matches prompts and resources with their own keys', () => {
    const prompt = decide(policy, {
      kind: 'prompt',
      identity: alice,
      upstream: 'git',
      name: 'deploy_prod',
      namespacedName: 'git__deploy_prod',
    });
    expect(prompt).toMatchObject({ decision: 'deny', reason: 'deploy prompts are for release managers' });
    const resource = decide(policy, {
      kind: 'resource',
      identity: alice,
      upstream: 'fs',
      name: 'file:///%70rivate/keys',
      namespacedName: 'fs+file:///%70rivate/keys',
    });
    expect(resource).toMatchObject({ decision: 'hide', rule: 'hide-private-resources' });
    // A tool rule does not apply to prompts: the trace says so.
    expect(prompt.trace.find((t) => t.rule === 'block-etc')).toMatchObject({ outcome: 'not-matched', failed: 'kind' });
  });
});

describe('conditions (CEL)', () => {
  it('evaluates the issue example: args.path.startsWith("/etc") || size(args.query) > 1000', () => {
    expect(decide(policy, tool(alice, 'write_file', { path: '/etc/hosts' })).decision).toBe('deny');
    expect(decide(policy, tool(alice, 'write_file', { path: '/tmp/a', query: 'x'.repeat(1001) })).decision).toBe(
      'deny',
    );
    expect(decide(policy, tool(alice, 'write_file', { path: '/tmp/a', query: 'short' }))).toMatchObject({
      decision: 'allow',
      rule: 'allow-dev-fs',
    });
  });

  it('a run-time error denies, with the error recorded, and never throws', () => {
    const decision = decide(policy, tool(alice, 'write_file', { path: '/tmp/a' }));
    expect(decision).toMatchObject({
      decision: 'deny',
      rule: 'block-etc',
      basis: 'rule',
      reason: 'denied: policy rule "block-etc" could not be evaluated',
    });
    expect(decision.errors).toEqual([{ rule: 'block-etc', error: 'No such key: query' }]);
    expect(decision.trace.find((t) => t.rule === 'block-etc')).toMatchObject({
      outcome: 'error',
      error: 'No such key: query',
    });
    // A non-string path is a type error at run time: also a denial.
    expect(decide(policy, tool(alice, 'write_file', { path: 42 })).decision).toBe('deny');
  });

  it('sees identity, upstream, tool, name, args and now', () => {
    const p = loadPolicy(
      [
        'default: {action: deny}',
        'rules:',
        '  - name: everything',
        '    when: >-',
        '      identity.subject == "alice" && "dev" in identity.groups && upstream == "fs" &&',
        '      tool == "write_file" && name == "fs__write_file" && kind == "tool" &&',
        '      args.n > 2 && now.getFullYear() == 2030',
        '    action: allow',
      ].join('\n'),
      'p.yaml',
    );
    const base = tool(alice, 'Write_File', { n: 3 });
    expect(decide(p, { ...base, now: new Date('2030-06-01T00:00:00Z') }).decision).toBe('allow');
    expect(decide(p, { ...base, now: new Date('2031-06-01T00:00:00Z') }).decision).toBe('deny');
  });
});

describe('combination', () => {
  it('hide > deny > approve > confirm > allow, default when nothing matched', () => {
    const dev = configuredIdentity('dave', ['dev']);
    expect(decide(permissive, tool(dev, 'read', {}, 'fs'))).toMatchObject({ decision: 'allow', basis: 'default' });
    expect(decide(permissive, tool(dev, 'write_x', {}, 'fs'))).toMatchObject({
      decision: 'confirm',
      rule: 'confirm-writes',
    });
    expect(decide(permissive, tool(dev, 'write_x', {}, 'prod'))).toMatchObject({ decision: 'deny', rule: 'deny-prod' });
    expect(decide(permissive, tool(dev, 'write_danger', {}, 'prod'))).toMatchObject({
      decision: 'hide',
      rule: 'hide-danger',
    });
    const p = loadPolicy(
      [
        'rules:',
        '  - {name: a, action: allow}',
        '  - {name: c, action: confirm}',
        '  - {name: b, action: approve, approve: {reviewers: {groups: [sre]}}}',
        '  - {name: b2, action: approve, approve: {reviewers: {groups: [ops]}}}',
      ].join('\n'),
      'p',
    );
    // Among equals the first in the file decides.
    expect(decide(p, tool(alice, 'x'))).toMatchObject({
      decision: 'approve',
      rule: 'b',
      approve: { reviewers: { groups: ['sre'] }, count: 1, timeoutMs: 600_000, onTimeout: 'deny' },
    });
  });

  it('audit rules are recorded, not enforced, with the shadow decision', () => {
    const decision = decide(permissive, tool(alice, 'read', {}, 'fs'));
    expect(decision.decision).toBe('allow');
    expect(decision.shadow).toEqual({ decision: 'deny', rule: 'audit-everything', auditRules: ['audit-everything'] });
    const fixtureDecision = decide(policy, tool(alice, 'read_file', { path: '/a/very/long/path' }));
    expect(fixtureDecision).toMatchObject({ decision: 'allow', rule: 'allow-dev-fs' });
    expect(fixtureDecision.shadow).toMatchObject({ decision: 'deny', rule: 'audit-long-reads' });
    expect(decide(policy, tool(alice, 'read_file', { path: '/a' })).shadow).toBeNull();
  });

  it('the default action applies to prompts and resources, but holds only to tools', () => {
    const p = loadPolicy('default:\n  action: approve\n  approve: {reviewers: {groups: [sre]}}\n', 'p');
    expect(decide(p, tool(alice, 'x')).decision).toBe('approve');
    expect(
      decide(p, { kind: 'prompt', identity: alice, upstream: 'fs', name: 'p', namespacedName: 'fs__p' }),
    ).toMatchObject({ decision: 'deny', reason: 'denied by policy: approve applies to tool calls only' });
  });
});

describe('decisions are data', () => {
  it('is frozen and survives a JSON round trip unchanged', () => {
    const decision = decide(policy, tool(alice, 'write_file', { path: '/tmp/a' }));
    expect(Object.isFrozen(decision)).toBe(true);
    expect(Object.isFrozen(decision.trace)).toBe(true);
    expect(Object.isFrozen(decision.trace[0])).toBe(true);
    expect(JSON.parse(JSON.stringify(decision))).toEqual(decision);
    expect(decision.policyVersion).toBe('v7');
    expect(decision.trace).toHaveLength(policy.rules.length);
    expect(decision.request).toEqual({
      kind: 'tool',
      upstream: 'fs',
      name: 'write_file',
      namespacedName: 'fs__write_file',
      subject: 'alice',
      groups: ['dev'],
    });
  });
});

describe('hide', () => {
  it('hides from lists for the matching identities only', () => {
    const item = { kind: 'tool' as const, upstream: 'fs', name: 'secret_keys', namespacedName: 'fs__secret_keys' };
    expect(isHidden(policy, carol, item)).toBe(true);
    expect(isHidden(policy, alice, item)).toBe(false);
    expect(isHidden(policy, carol, { ...item, name: 'SECRET_KEYS', namespacedName: 'FS__SECRET_KEYS' })).toBe(true);
    // And a call is decided `hide` as well.
    expect(decide(policy, tool(carol, 'secret_keys')).decision).toBe('hide');
  });

  it('a default of hide hides what no rule could match', () => {
    const p = loadPolicy(
      'default: {action: hide}\nrules:\n  - {name: r, match: {tool: "read_*"}, action: allow}\n',
      'p',
    );
    const item = { kind: 'tool' as const, upstream: 'fs', name: 'read_a', namespacedName: 'fs__read_a' };
    expect(isHidden(p, alice, item)).toBe(false);
    expect(isHidden(p, alice, { ...item, name: 'write_a', namespacedName: 'fs__write_a' })).toBe(true);
  });

  it('a hide condition that fails hides (fail closed)', () => {
    const p = loadPolicy('default: {action: allow}\nrules:\n  - {name: r, when: args.x == 1, action: hide}\n', 'p');
    expect(isHidden(p, alice, { kind: 'tool', upstream: 'fs', name: 'a', namespacedName: 'fs__a' })).toBe(true);
  });
});

describe('explain', () => {
  it('prints the decision, the deciding rule and why every other rule did or did not match', () => {
    const { decision, text } = explain(policy, tool(alice, 'write_file', { path: '/etc/passwd' }));
    expect(decision.decision).toBe('deny');
    expect(text).toBe(
      [
        'decision: deny',
        'decided by: rule "block-etc"',
        'reason the agent sees: writing under /etc is not allowed',
        'policy version: v7',
        'request: tool fs__write_file (upstream fs, its name write_file) as alice in groups dev',
        'args: {"path":"/etc/passwd"}',
        'rules:',
        '  1. hide-secrets-from-contractors [hide] no match: tool "write_file" (as the agent sees it "fs__write_file") does not match "fs__secret_*"',
        '  2. block-etc [deny] matched; DECIDES',
        '  3. approve-deletes [approve] no match: tool "write_file" (as the agent sees it "fs__write_file") does not match "fs__delete_*"',
        '  4. confirm-moves [confirm] no match: tool "write_file" (as the agent sees it "fs__write_file") does not match "move_file"',
        '  5. allow-dev-fs [allow] matched; outranked by "block-etc" (deny)',
        '  6. audit-long-reads [deny, audit] no match: tool "write_file" (as the agent sees it "fs__write_file") does not match "read_file"',
        '  7. deny-deploy-prompts [deny] no match: applies to prompts, not to tool calls',
        '  8. hide-private-resources [hide] no match: applies to resources, not to tool calls',
        '  9. allow-ci-bot [allow] no match: subject "alice" does not match "ci-bot"',
        'default: deny',
      ].join('\n'),
    );
  });

  it('explains conditions, groups, errors and the default', () => {
    const { text } = explain(policy, tool(nobody, 'write_file', { path: '/tmp/x' }));
    expect(text).toContain('  2. block-etc [deny] condition failed: No such key: query (counts as deny); DECIDES');
    expect(text).toContain('  5. allow-dev-fs [allow] no match: no groups; needs one matching "dev", "team-*"');
    expect(text).toContain('error: rule "block-etc": No such key: query');
    const other = explain(policy, tool(alice, 'write_file', { path: '/tmp/x', query: 'q' })).text;
    expect(other).toContain(
      '  2. block-etc [deny] no match: condition is false: args.path.startsWith("/etc") || size(args.query) > 1000',
    );
    const byDefault = explain(policy, tool(nobody, 'list', {}, 'git')).text;
    expect(byDefault).toContain('decided by: the default action (no enforced rule matched)');
    expect(byDefault).toContain('  5. allow-dev-fs [allow] no match: upstream "git" does not match "fs"');
    expect(byDefault).toMatch(/default: deny; DECIDES$/);
  });
});
