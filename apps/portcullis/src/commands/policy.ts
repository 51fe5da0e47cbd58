import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { type Config, ConfigError, loadConfigFile, type UpstreamSpec, upstreamSpecs } from '@portcullis/config';
import { canonicalName, configuredIdentity, describeError, splitNamespacedUri } from '@portcullis/core';
import {
  type CompiledPolicy,
  explain,
  FilePolicySource,
  loadPolicy,
  PolicyError,
  type PolicyRequest,
  type TargetKind,
} from '@portcullis/policy';
import { activePolicyVersion, applyPolicyVersion, listPolicyVersions, policyVersionLabel } from '@portcullis/store';
import { type Command, InvalidArgumentError } from 'commander';
import {
  describeStore,
  loadConfigForCommand,
  type OutputFormat,
  openStoreForCommand,
  parseOutputFormat,
  storeOptionsFor,
} from '../session-log.js';

/** Exit codes of the policy commands (see README): 0 done, 2 bad usage, configuration or policy. */
const EXIT_BAD_INPUT = 2;

class UsageError extends Error {}

function fail(message: string): never {
  process.stderr.write(`portcullis: ${message}\n`);
  process.exit(EXIT_BAD_INPUT);
}

async function loadPolicyOrExit(file: string): Promise<CompiledPolicy> {
  try {
    return await new FilePolicySource(file).load();
  } catch (error) {
    if (error instanceof PolicyError) fail(`invalid policy\n${error.message}`);
    throw error;
  }
}

function parseList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

function parseArgs(value: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`not JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError('a JSON object, e.g. \'{"path":"/etc/passwd"}\'');
  }
  return parsed as Record<string, unknown>;
}

/** Where a name the agent uses is routed, from the configuration alone (prefixes and separator). */
interface ResolvedTarget {
  readonly upstream: string;
  readonly name: string;
  readonly namespacedName: string;
}

function onlyUnprefixed(specs: readonly UpstreamSpec[], what: string): UpstreamSpec {
  const unprefixed = specs.filter((spec) => spec.namePrefix === undefined);
  if (unprefixed.length === 1 && unprefixed[0]) return unprefixed[0];
  if (unprefixed.length === 0) throw new UsageError(`${what} names no configured upstream (no prefix matches)`);
  throw new UsageError(
    `${what} could belong to any of the unprefixed upstreams ${unprefixed.map((s) => s.name).join(', ')}: name one with --upstream`,
  );
}

/** Resolves a namespaced tool or prompt name (`fs__write_file`) to its upstream and own name. */
export function resolveName(config: Config, name: string, upstream?: string): ResolvedTarget {
  const specs = upstreamSpecs(config).filter((spec) => !spec.disabled);
  const separator = config.gateway.separator;
  if (upstream !== undefined) {
    const spec = specs.find((candidate) => candidate.name === upstream);
    if (!spec) throw new UsageError(`no upstream "${upstream}" in the configuration`);
    const prefix = spec.namePrefix === undefined ? '' : `${spec.namePrefix}${separator}`;
    const own = canonicalName(name).startsWith(canonicalName(prefix)) ? name.slice(prefix.length) : name;
    return { upstream: spec.name, name: own, namespacedName: `${prefix}${own}` };
  }
  const wanted = canonicalName(name);
  // The longest matching prefix wins (`a` and `a-b` both configured).
  const prefixed = specs
    .filter(
      (spec) => spec.namePrefix !== undefined && wanted.startsWith(canonicalName(`${spec.namePrefix}${separator}`)),
    )
    .sort((a, b) => (b.namePrefix?.length ?? 0) - (a.namePrefix?.length ?? 0));
  const spec = prefixed[0];
  if (spec?.namePrefix !== undefined) {
    const own = name.slice(spec.namePrefix.length + separator.length);
    if (own === '') throw new UsageError(`"${name}" names upstream ${spec.name} but no tool or prompt`);
    return { upstream: spec.name, name: own, namespacedName: name };
  }
  const owner = onlyUnprefixed(specs, `"${name}"`);
  return { upstream: owner.name, name, namespacedName: name };
}

/** Resolves a gateway resource URI (`fs+file:///etc/hosts`) to its upstream and own URI. */
export function resolveResource(config: Config, uri: string, upstream?: string): ResolvedTarget {
  const specs = upstreamSpecs(config).filter((spec) => !spec.disabled);
  if (upstream !== undefined) {
    const spec = specs.find((candidate) => candidate.name === upstream);
    if (!spec) throw new UsageError(`no upstream "${upstream}" in the configuration`);
    const split = splitNamespacedUri(uri);
    const own = split && split.prefix === spec.namePrefix ? split.uri : uri;
    return { upstream: spec.name, name: own, namespacedName: spec.namePrefix ? `${spec.namePrefix}+${own}` : own };
  }
  const split = splitNamespacedUri(uri);
  const spec = split ? specs.find((candidate) => candidate.namePrefix === split.prefix) : undefined;
  if (spec && split) return { upstream: spec.name, name: split.uri, namespacedName: uri };
  const owner = onlyUnprefixed(specs, `"${uri}"`);
  return { upstream: owner.name, name: uri, namespacedName: uri };
}

interface ExplainOptions {
  readonly config: string;
  readonly policy?: string;
  readonly as?: string;
  readonly groups?: string[];
  readonly tool?: string;
  readonly prompt?: string;
  readonly resource?: string;
  readonly upstream?: string;
  readonly args?: Record<string, unknown>;
  readonly json?: boolean;
}

/** The policy file a configuration names (relative paths from the configuration file's directory). */
function policyFileOf(config: Config, configFile: string): string | undefined {
  const file = config.policy?.file;
  if (file === undefined) return undefined;
  return isAbsolute(file) ? file : resolve(dirname(resolve(configFile)), file);
}

/** `portcullis policy validate|explain`. Stored versions (`policy apply`) come with the session-log store. */
export function registerPolicyCommands(program: Command): void {
  const policy = program.command('policy').description('check policy documents and explain decisions');

  policy
    .command('validate')
    .description('check a policy file (rules, CEL conditions, redaction rules); exit 2 naming each problem')
    .argument('<file>', 'policy file (YAML)')
    .action(async (file: string) => {
      const compiled = await loadPolicyOrExit(file);
      const redaction = compiled.redaction.size;
      process.stdout.write(
        `${file}: valid (${compiled.rules.length} rules, ${redaction} redaction rules, default ${compiled.defaultAction.action}; version ${compiled.version})\n`,
      );
    });

  policy
    .command('explain')
    .description(
      'show the decision for one call: the deciding rule, and for every other rule why it did or did not match',
    )
    .requiredOption('-c, --config <file>', 'configuration file (upstream names, prefixes, separator; its policy)')
    .option('--policy <file>', 'policy file (default: policy.file of the configuration)')
    .option('--as <subject>', 'identity of the caller (default: identity.subject of the configuration)')
    .option('--groups <groups>', 'comma-separated groups of that identity', parseList)
    .option('--tool <name>', 'a tools/call of this tool, as the agent names it (fs__write_file)')
    .option('--prompt <name>', 'a prompts/get of this prompt, as the agent names it')
    .option('--resource <uri>', 'a resources/read of this URI, as the agent names it (fs+file:///etc/hosts)')
    .option('--upstream <name>', 'the upstream, when the name alone does not tell (unprefixed upstreams)')
    .option('--args <json>', 'the arguments, a JSON object', parseArgs)
    .option('--json', 'print the decision as JSON')
    .action(async (options: ExplainOptions) => {
      let config: Config;
      try {
        config = await loadConfigFile(options.config);
      } catch (error) {
        if (error instanceof ConfigError) fail(`invalid configuration\n${error.message}`);
        throw error;
      }
      const targets = [
        ['tool', options.tool],
        ['prompt', options.prompt],
        ['resource', options.resource],
      ].filter((entry): entry is [TargetKind, string] => entry[1] !== undefined);
      const [target] = targets;
      if (targets.length !== 1 || target === undefined) fail('name exactly one of --tool, --prompt, --resource');
      const policyFile = options.policy ?? policyFileOf(config, options.config);
      const fromStore = policyFile === undefined && config.policy?.source === 'store';
      if (policyFile === undefined && !fromStore) {
        fail(`${options.config} has no policy (policy.file); pass --policy FILE`);
      }
      const compiled =
        policyFile === undefined ? await loadStoredPolicyOrExit(options.config) : await loadPolicyOrExit(policyFile);
      const [kind, name] = target;
      let resolved: ResolvedTarget;
      try {
        resolved =
          kind === 'resource'
            ? resolveResource(config, name, options.upstream)
            : resolveName(config, name, options.upstream);
      } catch (error) {
        if (error instanceof UsageError) fail(error.message);
        throw error;
      }
      const request: PolicyRequest = {
        kind,
        identity: configuredIdentity(options.as ?? config.identity.subject, options.groups ?? config.identity.groups),
        upstream: resolved.upstream,
        name: resolved.name,
        namespacedName: resolved.namespacedName,
        args: kind === 'resource' ? {} : (options.args ?? {}),
        now: new Date(),
      };
      const { decision, text } = explain(compiled, request);
      // Which redaction rules of the same document would apply to what this call returns.
      const plan = compiled.redaction.planFor({
        upstream: resolved.upstream,
        kind,
        name: resolved.name,
        namespacedName: resolved.namespacedName,
        identity: request.identity,
      });
      const redaction = {
        rules: [...plan.rules],
        detectors: plan.detectors.map((active) => `${active.detector.id} (${active.action})`),
        fields: plan.fields.length,
        args: plan.args,
        dropBinary: plan.dropBinary,
      };
      if (options.json) {
        process.stdout.write(`${JSON.stringify({ ...decision, redaction }, null, 2)}\n`);
      } else {
        const lines =
          redaction.rules.length === 0
            ? ['redaction: no rule applies']
            : [
                `redaction: rules ${redaction.rules.map((rule) => `"${rule}"`).join(', ')}`,
                `  detectors: ${redaction.detectors.join(', ') || 'none'}; field rules: ${redaction.fields}; arguments in the log: ${redaction.args ? 'redacted' : 'as sent'}; binary: ${redaction.dropBinary ? 'dropped' : 'kept'}`,
              ];
        process.stdout.write(`${text}\n${lines.join('\n')}\n`);
      }
    });

  registerPolicyApplyCommands(policy);
}

/** The active stored version (`policy.source: store`), for `explain`; exit 2 when none was applied. */
async function loadStoredPolicyOrExit(configFile: string): Promise<CompiledPolicy> {
  const config = await loadConfigForCommand(configFile);
  const store = await openStoreForCommand(config, { migrate: true });
  let stored: Awaited<ReturnType<typeof activePolicyVersion>>;
  try {
    stored = await activePolicyVersion(store);
  } finally {
    await store.close();
  }
  if (stored === undefined) fail(`${configFile}: policy.source is store and no policy version has been applied`);
  const version = policyVersionLabel(stored.version);
  try {
    return loadPolicy(stored.document, `policy ${version}`, { version });
  } catch (error) {
    if (error instanceof PolicyError) fail(`invalid policy\n${error.message}`);
    throw error;
  }
}

/** `portcullis policy apply|versions`: stored policy versions in the session-log store. */
function registerPolicyApplyCommands(policy: Command): void {
  policy
    .command('apply')
    .description(
      'validate a policy file and store it as the new active version (gateways with policy.source: store pick it up within seconds)',
    )
    .argument('<file>', 'policy file (YAML)')
    .requiredOption('-c, --config <file>', 'configuration file (its database)')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (file: string, options: { config: string; output: OutputFormat }) => {
      const config = await loadConfigForCommand(options.config);
      let text: string;
      try {
        text = await readFile(file, 'utf8');
      } catch (error) {
        const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : 'cannot be read';
        fail(`invalid policy\n${file}: ${reason}`);
      }
      try {
        loadPolicy(text, file);
      } catch (error) {
        if (error instanceof PolicyError) fail(`invalid policy (nothing stored)\n${error.message}`);
        throw error;
      }
      const store = await openStoreForCommand(config, { migrate: true });
      try {
        const applied = await applyPolicyVersion(store, { document: text, source: file });
        const version = policyVersionLabel(applied.version);
        if (options.output === 'json') {
          process.stdout.write(
            `${JSON.stringify({ version, number: applied.version, sha256: applied.sha256, source: file, active: true })}\n`,
          );
        } else {
          process.stdout.write(`${version}\n`);
          process.stderr.write(`applied ${file} as policy version ${version} (active)\n`);
        }
        if (config.policy?.source !== 'store') {
          process.stderr.write(
            `note: ${options.config} does not set policy.source: store, so its gateways do not use applied versions\n`,
          );
        }
      } catch (error) {
        process.stderr.write(
          `portcullis: cannot store the policy (${describeStore(storeOptionsFor(config))}): ${describeError(error)}\n`,
        );
        process.exitCode = 1;
      } finally {
        await store.close();
      }
    });

  policy
    .command('versions')
    .description('list the stored policy versions, newest first')
    .requiredOption('-c, --config <file>', 'configuration file (its database)')
    .option('--output <format>', 'text or json', parseOutputFormat, 'text' as OutputFormat)
    .action(async (options: { config: string; output: OutputFormat }) => {
      const config = await loadConfigForCommand(options.config);
      const store = await openStoreForCommand(config, { migrate: true });
      try {
        const versions = await listPolicyVersions(store);
        if (options.output === 'json') {
          process.stdout.write(
            `${JSON.stringify(
              versions.map((v) => ({
                version: policyVersionLabel(v.version),
                number: v.version,
                sha256: v.sha256,
                source: v.source ?? null,
                appliedAt: v.appliedAt.toISOString(),
                appliedBy: v.appliedBy,
                active: v.active,
              })),
            )}\n`,
          );
        } else if (versions.length === 0) {
          process.stdout.write('no stored policy versions\n');
        } else {
          const lines = versions.map(
            (v) =>
              `${policyVersionLabel(v.version)}  ${v.active ? 'ACTIVE' : '      '}  ${v.appliedAt.toISOString()}  ${v.appliedBy}  ${v.source ?? '-'}  sha256:${v.sha256.slice(0, 16)}`,
          );
          process.stdout.write(`${lines.join('\n')}\n`);
        }
      } catch (error) {
        process.stderr.write(`portcullis: cannot list policy versions: ${describeError(error)}\n`);
        process.exitCode = 1;
      } finally {
        await store.close();
      }
    });
}
