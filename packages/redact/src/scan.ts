import type { RedactionAction, ValueRenderer } from './actions.js';
import { type Detector, WHOLE_TEXT_DETECTORS } from './detectors.js';

/** A detector as a plan applies it: with the action and the rule that asked for it. */
export interface ActiveDetector {
  readonly detector: Detector;
  readonly action: RedactionAction;
  readonly rule: string;
}

interface Span {
  start: number;
  end: number;
  active: ActiveDetector;
}

/** Texts longer than this are scanned in chunks, yielding to the event loop between them. */
export const CHUNK_SIZE = 256 * 1024;
/**
 * Chunks are scanned with this much look-ahead, so a match that starts before a chunk's end and is
 * at most this long is found whole. Longer matches (PEM blocks, JWTs) are found by detectors that
 * always see the whole text (they look for a literal prefix, so this stays fast).
 */
export const CHUNK_OVERLAP = 4096;

/** Cooperative time slicing: `maybeYield` gives the event loop a turn once the slice is used up. */
export class TimeBudget {
  #sliceEnd: number;
  yields = 0;
  constructor(readonly sliceMs = 8) {
    this.#sliceEnd = performance.now() + sliceMs;
  }
  async maybeYield(): Promise<void> {
    if (performance.now() < this.#sliceEnd) return;
    this.yields++;
    await new Promise<void>((resolve) => setImmediate(resolve));
    this.#sliceEnd = performance.now() + this.sliceMs;
  }
}

export interface TextFinding {
  readonly type: string;
  readonly action: RedactionAction;
  readonly rule: string;
}

function collect(text: string, detectors: readonly ActiveDetector[], offset: number, spans: Span[], limit?: number) {
  for (const active of detectors) {
    active.detector.find(text, (start, end) => {
      if (limit !== undefined && start >= limit) return;
      spans.push({ start: start + offset, end: end + offset, active });
    });
  }
}

/** Overlapping matches: the earliest wins, then the longest; the rest are discarded. */
function resolve(spans: Span[]): Span[] {
  if (spans.length <= 1) return spans;
  spans.sort((a, b) => a.start - b.start || b.end - a.end);
  const kept: Span[] = [];
  let reach = -1;
  for (const span of spans) {
    if (span.start < reach) {
      // Fully inside the previous one, or overlapping its tail: extend the previous one so nothing leaks.
      const last = kept[kept.length - 1]!;
      if (span.end > last.end) last.end = span.end;
      reach = last.end;
      continue;
    }
    kept.push({ ...span });
    reach = span.end;
  }
  return kept;
}

function render(
  text: string,
  spans: readonly Span[],
  renderer: ValueRenderer,
  onFinding: (finding: TextFinding) => void,
): string {
  if (spans.length === 0) return text;
  const parts: string[] = [];
  let cursor = 0;
  for (const span of spans) {
    parts.push(text.slice(cursor, span.start));
    const { detector, action, rule } = span.active;
    parts.push(renderer.text(action, detector.id, text.slice(span.start, span.end)));
    onFinding({ type: detector.id, action, rule });
    cursor = span.end;
  }
  parts.push(text.slice(cursor));
  return parts.join('');
}

/** Redacts one string synchronously (for strings up to `CHUNK_SIZE`). */
export function redactTextSync(
  text: string,
  detectors: readonly ActiveDetector[],
  renderer: ValueRenderer,
  onFinding: (finding: TextFinding) => void,
): string {
  if (detectors.length === 0 || text.length === 0) return text;
  const spans: Span[] = [];
  collect(text, detectors, 0, spans);
  return render(text, resolve(spans), renderer, onFinding);
}

/**
 * Redacts one string of any size. Long strings are scanned chunk by chunk (with `CHUNK_OVERLAP` of
 * look-ahead), giving the event loop a turn whenever the budget's slice is used up.
 */
export async function redactText(
  text: string,
  detectors: readonly ActiveDetector[],
  renderer: ValueRenderer,
  onFinding: (finding: TextFinding) => void,
  budget: TimeBudget,
): Promise<string> {
  if (text.length <= CHUNK_SIZE) {
    const out = redactTextSync(text, detectors, renderer, onFinding);
    await budget.maybeYield();
    return out;
  }
  const whole = detectors.filter((d) => WHOLE_TEXT_DETECTORS.has(d.detector.id));
  const chunked = detectors.filter((d) => !WHOLE_TEXT_DETECTORS.has(d.detector.id));
  const spans: Span[] = [];
  collect(text, whole, 0, spans);
  await budget.maybeYield();
  for (let start = 0; start < text.length; start += CHUNK_SIZE) {
    const end = Math.min(text.length, start + CHUNK_SIZE);
    const window = text.slice(start, Math.min(text.length, end + CHUNK_OVERLAP));
    // Matches starting in the overlap belong to the next chunk, which sees them from their start.
    collect(window, chunked, start, spans, end - start);
    await budget.maybeYield();
  }
  return render(text, resolve(spans), renderer, onFinding);
}
