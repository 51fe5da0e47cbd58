import { ValueRenderer } from './actions.js';
import { CompiledRedactionRules, compileRedactionRules, type RedactionPlan, type RedactionSubject } from './rules.js';
import type { TimeBudget } from './scan.js';
import type { JsonSchema } from './schema.js';
import { type Redacted, redactArgs, redactOutbound, redactResult } from './walker.js';

export interface RedactorOptions {
  /**
   * The rules: compiled, raw (validated here; throws `redaction.invalid_rules` naming the rule), or a
   * function returning the current compiled rules (a policy that reloads).
   */
  readonly rules: CompiledRedactionRules | (() => CompiledRedactionRules) | unknown;
  /**
   * Key of the `hash` action's HMAC (at least 16 bytes). Without one, a random key per process:
   * hashes then correlate only within one gateway process's lifetime.
   */
  readonly hashKey?: string | Uint8Array;
}

export interface RedactCallOptions {
  readonly outputSchema?: JsonSchema | undefined;
  readonly budget?: TimeBudget;
}

/** The redaction engine: rules plus the value renderer (hash key). Stateless per call. */
export class Redactor {
  readonly #rules: () => CompiledRedactionRules;
  readonly #renderer: ValueRenderer;

  constructor(options: RedactorOptions) {
    const { rules } = options;
    if (typeof rules === 'function') {
      this.#rules = rules as () => CompiledRedactionRules;
    } else {
      const compiled = rules instanceof CompiledRedactionRules ? rules : compileRedactionRules(rules);
      this.#rules = () => compiled;
    }
    this.#renderer = new ValueRenderer(options.hashKey);
  }

  planFor(subject: RedactionSubject): RedactionPlan {
    return this.#rules().planFor(subject);
  }

  /** A result returned by an upstream, as the agent will receive it. */
  redactResult<T extends Record<string, unknown>>(
    method: string,
    result: T,
    subject: RedactionSubject,
    options: RedactCallOptions = {},
  ): Promise<Redacted<T>> {
    return redactResult(method, result, this.planFor(subject), this.#renderer, options);
  }

  /** Params of a notification or request going from an upstream to the agent. */
  redactOutbound<T extends Record<string, unknown>>(
    method: string,
    params: T,
    subject: RedactionSubject,
    options: RedactCallOptions = {},
  ): Promise<Redacted<T>> {
    return redactOutbound(method, params, this.planFor(subject), this.#renderer, options);
  }

  /**
   * Arguments as the session log records them; only when a matching rule sets `args: true`
   * (otherwise returned unchanged). The upstream always receives the real arguments.
   */
  redactArgs<T>(args: T, subject: RedactionSubject, options: RedactCallOptions = {}): Promise<Redacted<T>> {
    const plan = this.planFor(subject);
    if (!plan.args) return redactArgs(args, { ...plan, empty: true }, this.#renderer, options);
    return redactArgs(args, plan, this.#renderer, options);
  }
}
