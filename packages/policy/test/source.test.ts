import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ActivePolicy, type CompiledPolicy, FilePolicySource, PolicyError, type PolicySource } from '../src/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function file(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'policy-source-'));
  dirs.push(dir);
  const path = join(dir, 'policy.yaml');
  writeFileSync(path, text);
  return path;
}

async function until(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('FilePolicySource', () => {
  it('loads a file with a content version and names the file in errors', async () => {
    const policy = await new FilePolicySource(file('default: { action: allow }\n')).load();
    expect(policy.version).toMatch(/^file:sha256:[0-9a-f]{16}$/);
    await expect(new FilePolicySource(file('default: { action: maybe }\n')).load()).rejects.toThrow(
      /policy\.yaml:1:\d+ at default\.action/,
    );
    await expect(new FilePolicySource('/nonexistent/policy.yaml').load()).rejects.toBeInstanceOf(PolicyError);
  });
});

describe('ActivePolicy', () => {
  it('reloads on change, keeps the previous version when the new one is bad, and follows a replaced file', async () => {
    const path = file('default: { action: allow }\n');
    const rejected: unknown[] = [];
    const active = await ActivePolicy.start(new FilePolicySource(path, { debounceMs: 10 }), {
      onRejected: (error) => rejected.push(error),
    });
    try {
      expect(active.current().defaultAction.action).toBe('allow');
      writeFileSync(path, 'default: { action: deny }\n');
      await until(() => active.current().defaultAction.action === 'deny');
      writeFileSync(path, 'default: { action: sometimes }\n');
      await until(() => rejected.length > 0);
      expect(String(rejected[0])).toMatch(/default\.action/);
      expect(active.current().defaultAction.action).toBe('deny');
      // Editors replace the file (write elsewhere, rename over it): the watch survives.
      const replacement = `${path}.tmp`;
      writeFileSync(replacement, 'default: { action: hide }\n');
      renameSync(replacement, path);
      await until(() => active.current().defaultAction.action === 'hide');
    } finally {
      active.close();
    }
  });

  it('refuses to start on a bad first version', async () => {
    await expect(ActivePolicy.start(new FilePolicySource(file('rules: 3\n')))).rejects.toBeInstanceOf(PolicyError);
  });

  it('serialises reloads and takes any source (the store later)', async () => {
    let loads = 0;
    const versions: CompiledPolicy[] = [];
    const real = await new FilePolicySource(file('default: { action: allow }\n')).load();
    const source: PolicySource = {
      description: 'memory',
      load: async () => {
        loads++;
        await new Promise((resolve) => setTimeout(resolve, 10));
        return { ...real, version: `v${loads}` };
      },
      watch: () => () => undefined,
    };
    const active = await ActivePolicy.start(source, { onLoaded: (policy) => versions.push(policy) });
    await Promise.all([active.reload(), active.reload(), active.reload()]);
    expect(loads).toBeLessThanOrEqual(3);
    expect(active.current().version).toBe(`v${loads}`);
    expect(versions.map((policy) => policy.version)).toEqual(
      Array.from({ length: loads - 1 }, (_, index) => `v${index + 2}`),
    );
  });
});
