import { RE2JS } from 're2js';
import type { Detector } from './detectors.js';
import { NAMED_VALIDATORS, type NamedValidator } from './validators.js';

/**
 * Custom detectors run in re2js, a pure-JavaScript port of RE2: matching time is linear in the text
 * whatever the pattern, so an administrator's pattern cannot hang the gateway with catastrophic
 * backtracking. The price is RE2 syntax: no backreferences and no lookaround (rejected at validation).
 */

export interface CustomDetectorSpec {
  /** Detector id: the type in summaries and masks (`[REDACTED:<id>]`). */
  readonly id: string;
  /** RE2 syntax. With capture groups, group 1 (when it matched) is what gets redacted. */
  readonly pattern: string;
  readonly caseInsensitive?: boolean;
  /** A named validator (policy documents) or a function (programmatic use); false drops the match. */
  readonly validator?: NamedValidator | ((match: string) => boolean);
}

export const MAX_CUSTOM_PATTERN_LENGTH = 1000;
/** RE2 program size bound, so that one pattern cannot make every scan slow. */
export const MAX_CUSTOM_PROGRAM_SIZE = 5000;

export class CustomPatternError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CustomPatternError';
  }
}

/** Compiles a pattern or throws `CustomPatternError` saying why it is not acceptable. */
export function compileCustomPattern(pattern: string, caseInsensitive = false): RE2JS {
  if (pattern.length === 0) throw new CustomPatternError('empty pattern');
  if (pattern.length > MAX_CUSTOM_PATTERN_LENGTH) {
    throw new CustomPatternError(`pattern longer than ${MAX_CUSTOM_PATTERN_LENGTH} characters`);
  }
  let compiled: RE2JS;
  try {
    compiled = RE2JS.compile(pattern, caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new CustomPatternError(`${message} (RE2 syntax: no backreferences or lookaround)`);
  }
  if (compiled.programSize() > MAX_CUSTOM_PROGRAM_SIZE) {
    throw new CustomPatternError(
      `pattern too complex (RE2 program size ${compiled.programSize()} > ${MAX_CUSTOM_PROGRAM_SIZE})`,
    );
  }
  if (compiled.matches('')) throw new CustomPatternError('pattern matches the empty string');
  return compiled;
}

export function customDetector(spec: CustomDetectorSpec): Detector {
  const compiled = compileCustomPattern(spec.pattern, spec.caseInsensitive);
  const validate =
    spec.validator === undefined
      ? undefined
      : typeof spec.validator === 'function'
        ? spec.validator
        : NAMED_VALIDATORS[spec.validator];
  const hasGroup = compiled.groupCount() > 0;
  return {
    id: spec.id,
    find(text, emit) {
      const matcher = compiled.matcher(text);
      while (matcher.find()) {
        let start = matcher.start();
        let end = matcher.end();
        if (end === start) continue;
        if (hasGroup) {
          const groupStart = matcher.start(1);
          if (groupStart >= 0) {
            start = groupStart;
            end = matcher.end(1);
          }
        }
        if (end <= start) continue;
        if (validate !== undefined && !validate(text.slice(start, end))) continue;
        emit(start, end);
      }
    },
  };
}
