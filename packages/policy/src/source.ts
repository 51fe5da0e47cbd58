import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { type CompiledPolicy, loadPolicy, PolicyError } from './compile.js';

/**
 * Where the active policy comes from. The gateway loads it once at start (a failure stops the
 * start) and again whenever the source says it may have changed. A file today
 * (`FilePolicySource`); the session-log store's applied versions (`policy apply`) later, behind the
 * same interface.
 */
export interface PolicySource {
  /** Names the source in logs and errors (a file path, `store`). */
  readonly description: string;
  /** Reads and compiles the current version. Throws `PolicyError` naming the place and the reason. */
  load(): Promise<CompiledPolicy>;
  /** Calls `changed` whenever a new version may be available; returns the function that stops watching. */
  watch(changed: () => void): () => void;
}

export interface FilePolicySourceOptions {
  /** How long to wait after a change event before reading (editors write in several steps). Default 50 ms. */
  readonly debounceMs?: number;
}

/**
 * A policy file. Watches the file's directory (editors and `mv` replace the file, which would end a
 * watch on the file itself) and reports changes of that name. The version recorded with decisions
 * is `file:sha256:<16 hex>` of the text.
 */
export class FilePolicySource implements PolicySource {
  readonly file: string;
  readonly description: string;
  readonly #debounceMs: number;

  constructor(file: string, options: FilePolicySourceOptions = {}) {
    this.file = resolve(file);
    this.description = file;
    this.#debounceMs = options.debounceMs ?? 50;
  }

  async load(): Promise<CompiledPolicy> {
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : 'cannot be read';
      throw new PolicyError(this.description, [{ path: '', line: undefined, column: undefined, reason }], {
        cause: error,
      });
    }
    const version = `file:sha256:${createHash('sha256').update(text).digest('hex').slice(0, 16)}`;
    return loadPolicy(text, this.description, { version });
  }

  watch(changed: () => void): () => void {
    const name = basename(this.file);
    let timer: NodeJS.Timeout | undefined;
    let watcher: FSWatcher | undefined;
    try {
      watcher = watch(dirname(this.file), { persistent: false }, (_event, filename) => {
        if (filename !== null && filename.toString() !== name) return;
        if (timer) clearTimeout(timer);
        timer = setTimeout(changed, this.#debounceMs);
        timer.unref();
      });
      watcher.on('error', () => undefined);
    } catch {
      // A directory that cannot be watched: the policy stays as loaded at start.
    }
    return () => {
      if (timer) clearTimeout(timer);
      watcher?.close();
    };
  }
}

export interface ActivePolicyOptions {
  /** A new version became active. */
  readonly onLoaded?: (policy: CompiledPolicy, previous: CompiledPolicy) => void;
  /** A new version could not be used; the previous one stays active. */
  readonly onRejected?: (error: unknown, kept: CompiledPolicy) => void;
}

/**
 * The policy in force: loaded from a `PolicySource` at start (`ActivePolicy.start` throws when the
 * first version is bad), then reloaded on every change the source reports. A bad new version is
 * rejected and the previous one kept (`onRejected`); reloads never overlap.
 */
export class ActivePolicy {
  #current: CompiledPolicy;
  #stopWatching: (() => void) | undefined;
  #reloading: Promise<void> | undefined;
  #again = false;

  private constructor(
    readonly source: PolicySource,
    first: CompiledPolicy,
    private readonly options: ActivePolicyOptions,
  ) {
    this.#current = first;
  }

  /** Loads the first version (throws `PolicyError` when it is bad) and starts watching the source. */
  static async start(source: PolicySource, options: ActivePolicyOptions = {}): Promise<ActivePolicy> {
    const active = new ActivePolicy(source, await source.load(), options);
    active.#stopWatching = source.watch(() => void active.reload());
    return active;
  }

  /** The version in force; read per request. */
  current(): CompiledPolicy {
    return this.#current;
  }

  /** Loads the source again; resolves once done (a rejected version leaves the current one). */
  reload(): Promise<void> {
    if (this.#reloading) {
      this.#again = true;
      return this.#reloading;
    }
    const run = async (): Promise<void> => {
      do {
        this.#again = false;
        try {
          const next = await this.source.load();
          const previous = this.#current;
          if (next.version === previous.version) continue;
          this.#current = next;
          this.options.onLoaded?.(next, previous);
        } catch (error) {
          this.options.onRejected?.(error, this.#current);
        }
      } while (this.#again);
    };
    this.#reloading = run().finally(() => {
      this.#reloading = undefined;
    });
    return this.#reloading;
  }

  close(): void {
    this.#stopWatching?.();
    this.#stopWatching = undefined;
  }
}
