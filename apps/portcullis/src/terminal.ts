import { createInterface } from 'node:readline/promises';

/**
 * Asks a yes/no question on stderr and reads the answer from stdin; only "y" or "yes" is a yes.
 * Ctrl-C or Ctrl-D at the prompt (or stdin closing) is a no.
 */
export async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return /^y(es)?$/i.test((await rl.question(question)).trim());
  } catch {
    process.stderr.write('\n');
    return false;
  } finally {
    rl.close();
  }
}

/**
 * A one-line progress bar on stderr; does nothing when stderr is not a terminal. `done` is clamped
 * to `0..total`: a count that outgrows its estimate shows a full bar, never a broken one. `end()`
 * moves past the bar once, and only if one was drawn, so it is safe in a `finally`.
 */
export function progressBar(total: number): { tick(done: number, label: string): void; end(): void } {
  if (process.stderr.isTTY !== true) return { tick: () => {}, end: () => {} };
  const width = 24;
  let drawn = false;
  return {
    tick: (count, label) => {
      const done = Math.min(Math.max(count, 0), total);
      const filled = total <= 0 ? width : Math.round((done / total) * width);
      process.stderr.write(
        `\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${label.slice(0, 40).padEnd(40)}`,
      );
      drawn = true;
    },
    end: () => {
      if (drawn) process.stderr.write('\n');
      drawn = false;
    },
  };
}
