import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';

/**
 * A local append-only file of store operations, written while the database is unreachable and
 * replayed into it on recovery. One JSON document per line. Each process appends to its own file
 * (named after its gateway instance id); a file is claimed for replay by renaming it, so two
 * processes sharing a spool directory never replay the same file twice.
 */
export class Spool {
  readonly dir: string;
  readonly #file: string;
  #fd: number | undefined;
  #lines = 0;

  constructor(dir: string, instance: string) {
    this.dir = dir;
    this.#file = join(dir, `${instance}.jsonl`);
  }

  /** Lines appended since the file was last claimed. */
  get pending(): number {
    return this.#lines;
  }

  /** Appends operations and fsyncs, so a spooled write-ahead record survives a crash. */
  append(ops: readonly unknown[]): void {
    if (ops.length === 0) return;
    if (this.#fd === undefined) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      this.#fd = openSync(this.#file, 'a', 0o600);
    }
    writeSync(this.#fd, `${ops.map((op) => JSON.stringify(op)).join('\n')}\n`);
    fsyncSync(this.#fd);
    this.#lines += ops.length;
  }

  /** Claims this process's current file for replay; new appends go to a fresh file. */
  claimOwn(): string | undefined {
    if (this.#fd !== undefined) {
      closeSync(this.#fd);
      this.#fd = undefined;
    }
    if (this.#lines === 0) return undefined;
    this.#lines = 0;
    return this.#claim(this.#file);
  }

  /** Claims every spool file left in the directory (by earlier runs or crashed processes). */
  claimAll(): string[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch {
      return [];
    }
    const claimed: string[] = [];
    for (const name of names.sort()) {
      if (!name.endsWith('.jsonl') || name.startsWith('rejected-')) continue;
      const path = join(this.dir, name);
      if (path === this.#file && this.#fd !== undefined) continue;
      const taken = this.#claim(path);
      if (taken) claimed.push(taken);
    }
    // Files claimed by a process that died mid-replay are taken over as well.
    for (const name of names.sort()) {
      if (name.endsWith('.replaying')) claimed.push(join(this.dir, name));
    }
    return claimed;
  }

  #claim(path: string): string | undefined {
    const target = `${path}.${process.pid}.${Date.now()}.replaying`;
    try {
      renameSync(path, target);
      return target;
    } catch {
      return undefined;
    }
  }

  /** Writes operations the database refused (bad data, not unavailability) where an operator can see them. */
  reject(instance: string, ops: readonly unknown[]): void {
    if (ops.length === 0) return;
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    const fd = openSync(join(this.dir, `rejected-${instance}.jsonl`), 'a', 0o600);
    try {
      writeSync(fd, `${ops.map((op) => JSON.stringify(op)).join('\n')}\n`);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }

  close(): void {
    if (this.#fd !== undefined) closeSync(this.#fd);
    this.#fd = undefined;
  }
}

export function readSpoolFile(path: string): unknown[] {
  const text = readFileSync(path, 'utf8');
  const ops: unknown[] = [];
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    try {
      ops.push(JSON.parse(line));
    } catch {
      // A torn last line from a crash mid-append: everything before it is intact.
    }
  }
  return ops;
}

export function removeSpoolFile(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already gone
  }
}
