export {
  ConfigError,
  type ConfigIssue,
  formatIssues,
  formatPath,
  loadConfigFile,
  parseConfig,
  parseYamlWithSchema,
  upstreamSpecs,
  type YamlLocator,
  type YamlParseResult,
} from './load.js';
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
