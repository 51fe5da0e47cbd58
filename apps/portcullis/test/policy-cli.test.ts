import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupAll, GATEWAY_BIN, spawnProcess, tempDir, writeConfig } from './support/processes.js';

/** `portcullis policy validate|explain`, run as the real program. */

interface Run {
  readonly code: number | string;
  readonly stdout: string;
  readonly stderr: string;
}

async function portcullis(args: string[]): Promise<Run> {
  const proc = spawnProcess(process.execPath, [GATEWAY_BIN, ...args]);
  let stdout = '';
  proc.child.stdout?.setEncoding('utf8');
  proc.child.stdout?.on('data', (chunk: string) => {
    stdout += chunk;
  });
  const code = await proc.exited;
  return { code, stdout, stderr: proc.stderr() };
}

const POLICY = `default: { action: deny, reason: not allowed by policy }
rules:
  - name: hide-secrets
    match: { tool: "fs__secret_*", groups: contractors }
    action: hide
  - name: block-etc
    match: { upstream: fs, tool: write_file }
    when: args.path.startsWith("/etc")
    action: deny
    reason: writing under /etc is not allowed
  - name: allow-dev-fs
    match: { upstream: fs, groups: dev }
    action: allow
  - name: private-resources
    match: { resource: "file:///private/*" }
    action: hide
  - name: deploy-prompts
    match: { prompt: "deploy_*" }
    action: deny
redact:
  - name: mail
    detectors: [email]
`;

function files(policy = POLICY): { config: string; policy: string } {
  const dir = tempDir();
  const policyFile = join(dir, 'policy.yaml');
  writeFileSync(policyFile, policy);
  const config = writeConfig({
    policy: { file: 'policy.yaml' },
    upstreams: {
      fs: { transport: 'stdio', command: 'fs-server' },
      docs: { transport: 'stdio', command: 'docs-server', prefix: 'd' },
    },
  });
  // writeConfig puts the configuration in a directory of its own: the policy goes beside it.
  writeFileSync(join(config, '..', 'policy.yaml'), policy);
  return { config, policy: policyFile };
}

afterAll(async () => {
  await cleanupAll();
});

describe('portcullis policy validate', () => {
  it('accepts a valid policy and summarises it', async () => {
    const { policy } = files();
    const run = await portcullis(['policy', 'validate', policy]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/policy\.yaml: valid \(5 rules, 1 redaction rules, default deny; version file:sha256:/);
  });

  it('exits 2 naming the file, the place and the reason of every problem, redaction rules included', async () => {
    const { policy } = files(
      [
        'default: { action: perhaps }',
        'rules:',
        '  - name: broken',
        '    when: size(args.path) >',
        '    action: deny',
        'redact:',
        '  - name: bad-path',
        '    fields: [{ path: "$.a[?(@.b)]" }]',
      ].join('\n'),
    );
    const run = await portcullis(['policy', 'validate', policy]);
    expect(run.code).toBe(2);
    expect(run.stderr).toContain('invalid policy');
    expect(run.stderr).toMatch(/policy\.yaml:1:\d+ at default\.action: /);
    expect(run.stderr).toMatch(/policy\.yaml:8:\d+ at redact\[0\]\.fields\[0\]\.path: rule "bad-path": invalid path/);
  });

  it('exits 2 on a CEL error, naming the rule', async () => {
    const { policy } = files('rules:\n  - name: broken\n    when: size(args.path) >\n    action: deny\n');
    const run = await portcullis(['policy', 'validate', policy]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/policy\.yaml:3:\d+ at rules\[0\]\.when: CEL syntax error in rule "broken"/);
  });

  it('exits 2 for a missing file', async () => {
    const run = await portcullis(['policy', 'validate', join(tempDir(), 'nope.yaml')]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/nope\.yaml: file not found/);
  });
});

describe('portcullis policy explain', () => {
  it('prints the decision, the deciding rule, and why every other rule matched or not', async () => {
    const { config } = files();
    const run = await portcullis([
      'policy',
      'explain',
      '--config',
      config,
      '--as',
      'alice',
      '--groups',
      'dev',
      '--tool',
      'fs__write_file',
      '--args',
      '{"path":"/etc/passwd"}',
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('decision: deny');
    expect(run.stdout).toContain('decided by: rule "block-etc"');
    expect(run.stdout).toContain('reason the agent sees: writing under /etc is not allowed');
    expect(run.stdout).toContain(
      'request: tool fs__write_file (upstream fs, its name write_file) as alice in groups dev',
    );
    expect(run.stdout).toMatch(/1\. hide-secrets \[hide\] no match: /);
    expect(run.stdout).toMatch(/3\. allow-dev-fs \[allow\] matched; outranked by "block-etc" \(deny\)/);
    // The document's redaction rules that apply to what this call would return.
    expect(run.stdout).toContain('redaction: rules "mail"');
    expect(run.stdout).toMatch(/detectors: email \(mask\)/);
  });

  it('lists the redaction rules that apply, and none when the caller is excepted', async () => {
    const { config } = files(
      POLICY.replace(
        '  - name: mail\n    detectors: [email]',
        '  - name: mail\n    detectors: [email]\n    except: { groups: [support] }',
      ),
    );
    const json = await portcullis(['policy', 'explain', '-c', config, '--tool', 'fs__read_file', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ redaction: { rules: ['mail'], args: false } });
    const excepted = await portcullis([
      'policy',
      'explain',
      '-c',
      config,
      '--groups',
      'support',
      '--tool',
      'fs__read_file',
    ]);
    expect(excepted.stdout).toContain('redaction: no rule applies');
  });

  it('resolves prefixes other than the upstream name, resources and prompts; prints JSON on request', async () => {
    const { config } = files();
    const allowed = await portcullis(['policy', 'explain', '-c', config, '--groups', 'dev', '--tool', 'FS__read_file']);
    expect(allowed.stdout).toContain('decision: allow');
    const prompt = await portcullis(['policy', 'explain', '-c', config, '--prompt', 'd__deploy_prod', '--json']);
    expect(JSON.parse(prompt.stdout)).toMatchObject({
      decision: 'deny',
      rule: 'deploy-prompts',
      request: { kind: 'prompt', upstream: 'docs', name: 'deploy_prod', namespacedName: 'd__deploy_prod' },
    });
    const resource = await portcullis(['policy', 'explain', '-c', config, '--resource', 'fs+file:///private/key']);
    expect(resource.stdout).toContain('decision: hide');
    expect(resource.stdout).toContain('(upstream fs, its name file:///private/key)');
  });

  it('exits 2 on bad usage: no target, an unknown prefix, arguments that are not a JSON object', async () => {
    const { config } = files();
    const none = await portcullis(['policy', 'explain', '-c', config]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/exactly one of --tool, --prompt, --resource/);
    const unknown = await portcullis(['policy', 'explain', '-c', config, '--tool', 'zz__x']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/"zz__x" names no configured upstream/);
    const args = await portcullis(['policy', 'explain', '-c', config, '--tool', 'fs__x', '--args', '[1]']);
    expect(args.code).not.toBe(0);
    expect(args.stderr).toMatch(/a JSON object/);
  });
});
