import { type CompiledPolicy, loadPolicy, type PolicySource } from '@portcullis/policy';
import { activePolicyVersion, activePolicyVersionNumber, policyVersionLabel, type Store } from '@portcullis/store';

/** The policy in force before any `policy apply`: every call is denied (fail closed). */
const NO_VERSION_DOCUMENT = `default:
  action: deny
  reason: no policy version has been applied to this gateway (portcullis policy apply FILE)
`;

export interface StorePolicySourceOptions {
  /** How often the store is asked for the active version's number. Default 1 s. */
  readonly pollMs?: number;
  /** A failed poll (the store is down): the version in force stays. */
  readonly onError?: (error: unknown) => void;
}

/**
 * The active version applied with `portcullis policy apply`, from the session-log store. Polls the
 * active version's number (one indexed single-row query) every second and reports a change; the
 * document is read and compiled only then. Works the same on Postgres and on PGlite (whose
 * LISTEN/NOTIFY does not cross processes).
 */
export class StorePolicySource implements PolicySource {
  readonly description = 'store (policy apply)';
  readonly #store: () => Promise<Store>;
  readonly #pollMs: number;
  readonly #onError: (error: unknown) => void;
  #seen: number | undefined;

  constructor(store: () => Promise<Store>, options: StorePolicySourceOptions = {}) {
    this.#store = store;
    this.#pollMs = options.pollMs ?? 1_000;
    this.#onError = options.onError ?? (() => undefined);
  }

  async load(): Promise<CompiledPolicy> {
    const stored = await activePolicyVersion(await this.#store());
    this.#seen = stored?.version;
    if (stored === undefined) return loadPolicy(NO_VERSION_DOCUMENT, 'store', { version: 'none' });
    const label = policyVersionLabel(stored.version);
    return loadPolicy(stored.document, `policy ${label}${stored.source ? ` (${stored.source})` : ''}`, {
      version: label,
    });
  }

  watch(changed: () => void): () => void {
    let polling = false;
    const timer = setInterval(() => {
      if (polling) return;
      polling = true;
      this.#store()
        .then((store) => activePolicyVersionNumber(store))
        .then((version) => {
          if (version !== this.#seen) changed();
        })
        .catch((error: unknown) => this.#onError(error))
        .finally(() => {
          polling = false;
        });
    }, this.#pollMs);
    timer.unref();
    return () => clearInterval(timer);
  }
}
