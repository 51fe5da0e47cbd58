export { ConfigError, type ConfigIssue, loadConfigFile, parseConfig, upstreamSpecs } from './load.js';
export {
  type Config,
  ConfigSchema,
  type HttpUpstreamConfig,
  type Isolation,
  resolveUpstream,
  type StdioUpstreamConfig,
  type UpstreamConfig,
  type UpstreamEra,
  type UpstreamSpec,
} from './schema.js';
