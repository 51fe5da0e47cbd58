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
  spans.sort(bySpan);
  return resolveSorted(spans);
}

function bySpan(a: Span, b: Span): number {
  return a.start - b.start || b.end - a.end;
}

/** Two sorted span lists as one sorted list. */
function mergeSorted(a: Span[], b: Span[]): Span[] {
  if (a.length === 0) return b;
  if (b.length === 0) return a;
  const out: Span[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) out.push(bySpan(a[i]!, b[j]!) <= 0 ? a[i++]! : b[j++]!);
  while (i < a.length) out.push(a[i++]!);
  while (j < b.length) out.push(b[j++]!);
  return out;
}

/** `resolve` for spans already sorted by start, then longest first. */
function resolveSorted(spans: Span[]): Span[] {
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

/** Spans rendered between two looks at the clock, for long texts. */
const SPANS_PER_CHECK = 1024;

/** `render` for long texts: gives the event loop a turn while rendering many findings. */
async function renderSliced(
  text: string,
  spans: readonly Span[],
  renderer: ValueRenderer,
  onFinding: (finding: TextFinding) => void,
  budget: TimeBudget,
): Promise<string> {
  if (spans.length === 0) return text;
  const parts: string[] = [];
  let cursor = 0;
  for (let i = 0; i < spans.length; i++) {
    const span = spans[i]!;
    parts.push(text.slice(cursor, span.start));
    const { detector, action, rule } = span.active;
    parts.push(renderer.text(action, detector.id, text.slice(span.start, span.end)));
    onFinding({ type: detector.id, action, rule });
    cursor = span.end;
    if (i % SPANS_PER_CHECK === SPANS_PER_CHECK - 1) await budget.maybeYield();
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
  const wholeSpans: Span[] = [];
  collect(text, whole, 0, wholeSpans);
  wholeSpans.sort(bySpan);
  await budget.maybeYield();
  // Each chunk's spans start inside that chunk: sorted per chunk, they are sorted overall, so no
  // single sort (or render) of every finding of a multi-megabyte text holds the event loop.
  let spans: Span[] = [];
  for (let start = 0; start < text.length; start += CHUNK_SIZE) {
    const end = Math.min(text.length, start + CHUNK_SIZE);
    const window = text.slice(start, Math.min(text.length, end + CHUNK_OVERLAP));
    // Matches starting in the overlap belong to the next chunk, which sees them from their start.
    const chunkSpans: Span[] = [];
    collect(window, chunked, start, chunkSpans, end - start);
    chunkSpans.sort(bySpan);
    for (const span of chunkSpans) spans.push(span);
    await budget.maybeYield();
  }
  spans = mergeSorted(wholeSpans, spans);
  await budget.maybeYield();
  const kept = resolveSorted(spans);
  await budget.maybeYield();
  return renderSliced(text, kept, renderer, onFinding, budget);
}
