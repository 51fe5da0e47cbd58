import type { PriorDiscovery } from '@modelcontextprotocol/client';
import type { UpstreamSpec } from '@portcullis/config';

export interface EraVerdictCacheOptions {
  /**
   * How long a verdict is supplied to later connects. A stale legacy verdict never corrects itself
   * (an upgraded server still answers `initialize`), so verdicts expire and the next connect probes
   * again. Default: one hour.
   */
  readonly ttlMs?: number;
  readonly now?: () => number;
}

interface StoredVerdict {
  readonly verdict: PriorDiscovery;
  readonly storedAt: number;
}

/**
 * Era verdicts (`server/discover` outcomes) per upstream, shared by every connection to it, so that
 * only the first connect to an upstream pays the probe. Keyed by the upstream's name and the target
 * it points at: a spec pointing somewhere else probes afresh. Connections to one upstream share one
 * authorization context (the spec's headers/env), which is what makes sharing the verdict safe.
 */
export class EraVerdictCache {
  private readonly verdicts = new Map<string, StoredVerdict>();
  private readonly ttlMs: number;
  private readonly now: () => number;

  constructor(options: EraVerdictCacheOptions = {}) {
    this.ttlMs = options.ttlMs ?? 60 * 60 * 1000;
    this.now = options.now ?? Date.now;
  }

  static keyOf(spec: UpstreamSpec): string {
    return spec.transport === 'stdio'
      ? JSON.stringify([spec.name, spec.transport, spec.command, spec.args, spec.env, spec.cwd ?? null])
      : JSON.stringify([spec.name, spec.transport, spec.url, spec.headers]);
  }

  /** The fresh verdict for this upstream, if any. */
  get(spec: UpstreamSpec): PriorDiscovery | undefined {
    const key = EraVerdictCache.keyOf(spec);
    const entry = this.verdicts.get(key);
    if (entry === undefined) return undefined;
    if (this.now() - entry.storedAt >= this.ttlMs) {
      this.verdicts.delete(key);
      return undefined;
    }
    return entry.verdict;
  }

  set(spec: UpstreamSpec, verdict: PriorDiscovery): void {
    this.verdicts.set(EraVerdictCache.keyOf(spec), { verdict, storedAt: this.now() });
  }

  /** Forgets the verdict (it proved wrong, or the upstream was removed). */
  delete(spec: UpstreamSpec): void {
    this.verdicts.delete(EraVerdictCache.keyOf(spec));
  }

  /** Forgets every verdict of the named upstream, whatever target it pointed at. */
  deleteUpstream(name: string): void {
    for (const key of this.verdicts.keys()) {
      const parsed: unknown = JSON.parse(key);
      if (Array.isArray(parsed) && parsed[0] === name) this.verdicts.delete(key);
    }
  }

  get size(): number {
    return this.verdicts.size;
  }
}
