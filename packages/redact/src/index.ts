export { ACTION_STRENGTH, REDACTION_ACTIONS, type RedactionAction, ValueRenderer } from './actions.js';
export {
  type CustomDetectorSpec,
  CustomPatternError,
  compileCustomPattern,
  customDetector,
  MAX_CUSTOM_PATTERN_LENGTH,
} from './custom.js';
export {
  BUILTIN_DETECTOR_IDS,
  BUILTIN_DETECTORS,
  type BuiltinDetectorId,
  DEFAULT_DETECTOR_IDS,
  type Detector,
  OPT_IN_DETECTORS,
} from './detectors.js';
export { formatPath, type ParsedPath, PathSyntaxError, parsePath, selectPath } from './path.js';
export { type RedactCallOptions, Redactor, type RedactorOptions } from './redactor.js';
export {
  CompiledRedactionRules,
  CustomDetectorSchema,
  compileRedactionRules,
  DetectorIdSchema,
  EMPTY_PLAN,
  FieldRuleSchema,
  RedactionActionSchema,
  type RedactionMatch,
  RedactionMatchSchema,
  type RedactionPlan,
  type RedactionRule,
  type RedactionRuleInput,
  type RedactionRuleIssue,
  RedactionRuleSchema,
  type RedactionRules,
  RedactionRulesSchema,
  type RedactionSubject,
  type RedactionValidation,
  validateRedactionRules,
} from './rules.js';
export { CHUNK_SIZE, redactText, redactTextSync, TimeBudget } from './scan.js';
export type { JsonSchema } from './schema.js';
export {
  createOutboundRedaction,
  createRedactStage,
  type OutboundMessage,
  REDACTED_ARGS_ANNOTATION,
  REDACTION_SUMMARY_ANNOTATION,
  type RedactedArguments,
  type RedactStageOptions,
  redactionSubjectOf,
} from './stage.js';
export { EMPTY_SUMMARY, mergeSummaries, type RedactionEntry, type RedactionSummary } from './summary.js';
export { cardPrefixValid, ibanValid, luhnValid, mod97, ssnValid } from './validators.js';
export { isTextualMime, PROTOCOL_KEYS, type Redacted, redactArgs, redactOutbound, redactResult } from './walker.js';
