import type { RedactionAction } from './actions.js';

/** One kind of redaction at one place. Never carries the value. */
export interface RedactionEntry {
  /** Detector id (`email`, `card`, a custom id) or a field rule's label. */
  readonly type: string;
  /** Where, as JSONPath over the message (`$.content[0].text`, `$.structuredContent.rows[3].ssn`). */
  readonly location: string;
  readonly action: RedactionAction;
  /** The rule that asked for it. */
  readonly rule: string;
  readonly count: number;
}

export interface RedactionSummary {
  /** Total number of redacted values. */
  readonly total: number;
  /** Totals per type (exact even when `entries` is truncated). */
  readonly byType: Readonly<Record<string, number>>;
  readonly entries: readonly RedactionEntry[];
  /** Entries beyond the cap were not listed individually (their counts are in `total` and `byType`). */
  readonly truncated: boolean;
}

export const MAX_SUMMARY_ENTRIES = 500;

export const EMPTY_SUMMARY: RedactionSummary = Object.freeze({
  total: 0,
  byType: Object.freeze({}),
  entries: Object.freeze([]) as readonly RedactionEntry[],
  truncated: false,
});

export class SummaryBuilder {
  readonly #entries = new Map<
    string,
    { type: string; location: string; action: RedactionAction; rule: string; count: number }
  >();
  readonly #byType = new Map<string, number>();
  #total = 0;
  #truncated = false;

  add(type: string, location: string, action: RedactionAction, rule: string, count = 1): void {
    if (count <= 0) return;
    this.#total += count;
    this.#byType.set(type, (this.#byType.get(type) ?? 0) + count);
    const key = `${type}\u0000${location}\u0000${action}\u0000${rule}`;
    const entry = this.#entries.get(key);
    if (entry !== undefined) entry.count += count;
    else if (this.#entries.size < MAX_SUMMARY_ENTRIES) this.#entries.set(key, { type, location, action, rule, count });
    else this.#truncated = true;
  }

  get total(): number {
    return this.#total;
  }

  build(): RedactionSummary {
    if (this.#total === 0) return EMPTY_SUMMARY;
    return Object.freeze({
      total: this.#total,
      byType: Object.freeze(Object.fromEntries(this.#byType)),
      entries: Object.freeze([...this.#entries.values()].map((entry) => Object.freeze({ ...entry }))),
      truncated: this.#truncated,
    });
  }
}

/** Merges several summaries (e.g. of the notifications of one call). */
export function mergeSummaries(summaries: readonly RedactionSummary[]): RedactionSummary {
  const builder = new SummaryBuilder();
  for (const summary of summaries) {
    for (const entry of summary.entries) builder.add(entry.type, entry.location, entry.action, entry.rule, entry.count);
  }
  return builder.build();
}
