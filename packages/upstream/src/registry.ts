import type { UpstreamSpec } from '@portcullis/config';
import { PortcullisError } from '@portcullis/core';
import type { UpstreamRegistry } from './types.js';

/** An upstream registry held in memory: the config file's upstreams, replaced wholesale by the admin CLI. */
export class StaticUpstreamRegistry implements UpstreamRegistry {
  private specs: readonly UpstreamSpec[];
  private readonly listeners = new Set<(specs: readonly UpstreamSpec[]) => void>();

  constructor(specs: readonly UpstreamSpec[]) {
    this.specs = freezeSpecs(specs);
  }

  list(): readonly UpstreamSpec[] {
    return this.specs;
  }

  /** Replaces every upstream definition and tells the listeners. Names must be unique. */
  replace(specs: readonly UpstreamSpec[]): void {
    this.specs = freezeSpecs(specs);
    for (const listener of this.listeners) listener(this.specs);
  }

  onChange(listener: (specs: readonly UpstreamSpec[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

function freezeSpecs(specs: readonly UpstreamSpec[]): readonly UpstreamSpec[] {
  const seen = new Set<string>();
  for (const spec of specs) {
    if (seen.has(spec.name))
      throw new PortcullisError('upstream.duplicate_name', `duplicate upstream name "${spec.name}"`);
    seen.add(spec.name);
  }
  return Object.freeze([...specs]);
}
