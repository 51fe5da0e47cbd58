import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { PortcullisError } from '@portcullis/core';

const LOCK_FILE = 'portcullis.lock';
/** Data directories this process holds (a second store in the same process is refused too). */
const held = new Set<string>();

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    // EPERM: the process exists but belongs to someone else.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the embedded database's data directory for this process. PGlite is single-process: two
 * gateways (say, two `portcullis stdio` launched from the same configuration) writing one data
 * directory would corrupt it, so the second is refused with an error naming the holder. A lock left
 * by a process that no longer exists is taken over. Returns the release function.
 */
export function lockDataDir(dataDir: string): () => void {
  const path = join(dataDir, LOCK_FILE);
  if (held.has(path)) {
    throw new PortcullisError('store.locked', `the embedded database in ${dataDir} is already open in this process`);
  }
  for (let attempt = 0; attempt < 2; attempt++) {
    let fd: number;
    try {
      fd = openSync(path, 'wx', 0o600);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
      if (Number.isInteger(holder) && holder !== process.pid && isAlive(holder)) {
        throw new PortcullisError(
          'store.locked',
          `the embedded database in ${dataDir} is in use by process ${holder}; give each gateway its own database.dataDir, or point database.url at a Postgres server that several gateways can share`,
        );
      }
      unlinkSync(path);
      continue;
    }
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    held.add(path);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      held.delete(path);
      try {
        if (readFileSync(path, 'utf8').trim() === String(process.pid)) unlinkSync(path);
      } catch {
        // Already gone: nothing to release.
      }
    };
  }
  throw new PortcullisError('store.locked', `could not take the lock on the embedded database in ${dataDir}`);
}
