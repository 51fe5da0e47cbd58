export {
  describeError,
  JsonRpcError,
  PortcullisError,
  RpcCode,
  toPortcullisError,
  unknownTargetError,
} from './errors.js';
export { encodeMcpHeaderValue } from './header-value.js';
export { anonymousIdentity, configuredIdentity, type Identity } from './identity.js';
export {
  assertValidUpstreamName,
  canonicalName,
  DEFAULT_SEPARATOR,
  isValidToolName,
  type NamespaceOptions,
  namespacedName,
  namespacedUri,
  splitNamespacedUri,
  TOOL_NAME_PATTERN,
  UPSTREAM_NAME_PATTERN,
} from './naming.js';
export {
  type AgentChannel,
  composePipeline,
  composeStages,
  type FrontTransport,
  type Next,
  type Pipeline,
  type ProtocolEra,
  passThroughStage,
  type RequestContext,
  type RouteTarget,
  type RpcParams,
  type RpcResult,
  type SessionInfo,
  STAGE_ORDER,
  type Stage,
  type StagedPipeline,
  type StageHandler,
  type StageName,
  type Terminal,
} from './pipeline.js';
