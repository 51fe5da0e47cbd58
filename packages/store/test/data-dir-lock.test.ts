import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openStore } from '../src/index.js';

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'portcullis-lock-'));
  dirs.push(dir);
  return dir;
}

describe('embedded data directory lock', () => {
  it('refuses a second store on the same data directory until the first closes', async () => {
    const dir = dataDir();
    const first = await openStore({ dataDir: dir });
    await expect(openStore({ dataDir: dir })).rejects.toMatchObject({ code: 'store.locked' });
    await first.close();
    const second = await openStore({ dataDir: dir });
    await second.close();
  });

  it('names the live process that holds it, and takes over a lock its holder left behind', async () => {
    const dir = dataDir();
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60_000)'], { stdio: 'ignore' });
    try {
      writeFileSync(join(dir, 'portcullis.lock'), `${holder.pid}\n`);
      await expect(openStore({ dataDir: dir })).rejects.toThrow(`in use by process ${holder.pid}`);
    } finally {
      holder.kill('SIGKILL');
      await new Promise((done) => holder.once('exit', done));
    }
    const store = await openStore({ dataDir: dir });
    await store.close();
  });
});
