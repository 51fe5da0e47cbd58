import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * A machine-wide reader/writer lock around the shared Postgres server, across vitest workers (and
 * other suites on the machine). Suites that use Postgres hold it shared; the suite that stops and
 * restarts the server holds it exclusively, so no one else's queries meet the outage. Writers are
 * preferred: once one waits, new readers wait behind it. Holders that died are detected by pid.
 */
const ROOT = join(tmpdir(), 'portcullis-postgres-test-lock');
const WRITER = join(ROOT, 'writer');
const READERS = join(ROOT, 'readers');

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function pidIn(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8').trim());
  } catch {
    return Number.NaN;
  }
}

function clearStaleWriter(): void {
  if (!existsSync(WRITER)) return;
  const pid = pidIn(join(WRITER, 'pid'));
  // A writer directory without a pid yet is being created: leave it.
  if (Number.isInteger(pid) && !alive(pid)) rmSync(WRITER, { recursive: true, force: true });
}

function liveReaders(): number {
  let names: string[];
  try {
    names = readdirSync(READERS);
  } catch {
    return 0;
  }
  let live = 0;
  for (const name of names) {
    const pid = Number(name.split('-')[0]);
    if (Number.isInteger(pid) && alive(pid)) live += 1;
    else rmSync(join(READERS, name), { force: true });
  }
  return live;
}

/** Shared hold: Postgres stays up while it is held. Returns the release. */
export async function holdPostgresShared(): Promise<() => void> {
  mkdirSync(READERS, { recursive: true });
  const mine = join(READERS, `${process.pid}-${randomBytes(4).toString('hex')}`);
  for (;;) {
    clearStaleWriter();
    if (!existsSync(WRITER)) {
      writeFileSync(mine, String(process.pid));
      if (!existsSync(WRITER)) return () => rmSync(mine, { force: true });
      rmSync(mine, { force: true });
    }
    await sleep(200);
  }
}

/** Exclusive hold: no shared holder is running. Returns the release. */
export async function holdPostgresExclusive(): Promise<() => void> {
  mkdirSync(ROOT, { recursive: true });
  for (;;) {
    clearStaleWriter();
    try {
      mkdirSync(WRITER);
      writeFileSync(join(WRITER, 'pid'), String(process.pid));
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      await sleep(200);
    }
  }
  while (liveReaders() > 0) await sleep(200);
  return () => rmSync(WRITER, { recursive: true, force: true });
}
