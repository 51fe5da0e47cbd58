export {
  CEL_VARIABLES,
  type CompiledAction,
  type CompiledCondition,
  type CompiledPolicy,
  type CompiledRule,
  type CompileOptions,
  compilePolicy,
  loadPolicy,
  loadPolicyFile,
  PolicyError,
  type PolicyIssue,
  parsePolicy,
  type ResolvedApprove,
  TARGET_KINDS,
  type TargetKind,
  validatePolicy,
} from './compile.js';
export {
  ACTION_PRECEDENCE,
  type Decision,
  type DecisionRequest,
  defaultDenyReason,
  evaluate,
  failedDecision,
  isHidden,
  type ListedItem,
  type MatchFailure,
  type PolicyRequest,
  type RuleTrace,
  type ShadowDecision,
} from './evaluate.js';
export { explain, formatDecision } from './explain.js';
export { canonicalUri, compileGlob, compileGlobs, type Glob, type GlobSet } from './glob.js';
export {
  ACTIONS,
  type ApproveSpec,
  type ConfirmSpec,
  type DefaultAction,
  DURATION_PATTERN,
  durationMs,
  type PolicyAction,
  type PolicyDocument,
  type PolicyMatch,
  type PolicyRule,
  PolicySchema,
} from './schema.js';
export {
  ActivePolicy,
  type ActivePolicyOptions,
  FilePolicySource,
  type FilePolicySourceOptions,
  type PolicySource,
} from './source.js';
export {
  type AuthorizeStageOptions,
  createAuthorizeStage,
  DECISION_ANNOTATION,
  denial,
  HOLD_RELEASED_ANNOTATION,
  type PendingHandler,
  POLICY_DENIED_CODE,
} from './stage.js';
