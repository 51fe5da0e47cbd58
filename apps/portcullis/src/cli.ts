import { type Config, ConfigError, loadConfigFile } from '@portcullis/config';
import { configuredIdentity, describeError } from '@portcullis/core';
import { serveGatewayOverHttp, serveGatewayOverStdio } from '@portcullis/front';
import { Command, InvalidArgumentError } from 'commander';
import { createApiKeyAuthenticator } from './auth.js';
import { registerApplyCommands } from './commands/apply.js';
import { registerApprovalCommands } from './commands/approvals.js';
import { registerAuditCommands } from './commands/audit.js';
import { registerDbCommands } from './commands/db.js';
import { registerKeysCommands } from './commands/keys.js';
import { registerPolicyCommands } from './commands/policy.js';
import { registerReplayCommands } from './commands/replay.js';
import { registerSessionsCommands } from './commands/sessions.js';
import { registerUpstreamCommands } from './commands/upstream.js';
import { createLogger } from './logger.js';
import { startGatewayRuntime } from './runtime.js';
import { resolveConfigPaths } from './session-log.js';

export const VERSION = '0.1.0';

/** Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration. */
export const ExitCode = { Ok: 0, Failure: 1, BadInput: 2 } as const;

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535)
    throw new InvalidArgumentError('a port is an integer from 0 to 65535');
  return port;
}

function parseList(value: string): string[] {
  return value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

async function loadConfigOrExit(file: string): Promise<Config> {
  try {
    const config = await loadConfigFile(file);
    resolveConfigPaths(config, file);
    return config;
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`portcullis: invalid configuration\n${error.message}\n`);
      process.exit(ExitCode.BadInput);
    }
    throw error;
  }
}

export function buildProgram(): Command {
  const program = new Command('portcullis')
    .description('An MCP gateway: one MCP server for agents in front of many upstream MCP servers')
    .version(VERSION);

  program
    .command('serve')
    .description('serve agents over HTTP: Streamable HTTP at /mcp (both protocol eras), HTTP+SSE at /sse')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--host <host>', 'address to bind (default from config: 127.0.0.1)')
    .option('--port <port>', 'port to listen on; 0 picks a free one', parsePort)
    .action(async (options: { config: string; host?: string; port?: number }) => {
      const config = await loadConfigOrExit(options.config);
      if (options.host !== undefined) config.server.host = options.host;
      if (options.port !== undefined) config.server.port = options.port;
      const logger = createLogger(config.logging.level, config.logging.file);
      const runtime = await startGatewayRuntime(config, logger);
      const front = await serveGatewayOverHttp(runtime.gateway, {
        server: config.server,
        logger,
        authenticate: createApiKeyAuthenticator(runtime.sessionLog.store, {
          anonymous: config.auth.anonymous,
          adminGroups: config.auth.adminGroups,
          onError: (error) => logger.warn({ err: describeError(error) }, 'API key bookkeeping failed'),
        }),
        admin: runtime.admin,
      });
      logger.info({ url: `${front.url}/mcp` }, 'portcullis listening');
      process.stderr.write(`portcullis listening on ${front.url}/mcp\n`);
      onShutdown(async () => {
        await front.close();
        await runtime.close();
        logger.flush();
      });
    });

  program
    .command('stdio')
    .description('serve one agent over stdin/stdout (the agent launches portcullis as its MCP server)')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option('--as <subject>', 'identity of the agent (default from config)')
    .option('--groups <groups>', 'comma-separated groups of that identity', parseList)
    .action(async (options: { config: string; as?: string; groups?: string[] }) => {
      const config = await loadConfigOrExit(options.config);
      const logger = createLogger(config.logging.level, config.logging.file);
      const identity = configuredIdentity(
        options.as ?? config.identity.subject,
        options.groups ?? config.identity.groups,
      );
      const runtime = await startGatewayRuntime(config, logger);
      const front = serveGatewayOverStdio(runtime.gateway, {
        identity,
        maxMessageBytes: config.server.maxMessageBytes,
      });
      const shutdown = onShutdown(async () => {
        await front.close();
        await runtime.close();
        logger.flush();
      });
      await front.done;
      await shutdown();
    });

  const configCommand = program.command('config').description('work with configuration files');
  configCommand
    .command('validate')
    .description('check a configuration file and exit non-zero naming each problem')
    .argument('<file>', 'configuration file')
    .action(async (file: string) => {
      const config = await loadConfigOrExit(file);
      process.stdout.write(`${file}: valid (${Object.keys(config.upstreams).length} upstreams)\n`);
    });

  registerDbCommands(program);
  registerAuditCommands(program);
  registerApprovalCommands(program);
  registerPolicyCommands(program);
  registerKeysCommands(program);
  registerSessionsCommands(program);
  registerReplayCommands(program);
  registerUpstreamCommands(program);
  registerApplyCommands(program);
  exitBadInputOnUsageErrors(program);
  return program;
}

/**
 * Commander's own usage errors (unknown option or command, missing argument or option, an invalid
 * value or choice) exit 2 like every other bad usage, instead of commander's 1; `--help` and
 * `--version` still exit 0, and commander has already printed its message. Set on every command
 * after they are all registered: each command exits through its own callback.
 */
function exitBadInputOnUsageErrors(command: Command): void {
  command.exitOverride((error) => process.exit(error.exitCode === 0 ? ExitCode.Ok : ExitCode.BadInput));
  for (const subcommand of command.commands) exitBadInputOnUsageErrors(subcommand);
}

/** Runs `stop` once on SIGINT/SIGTERM (or when called), then exits. */
function onShutdown(stop: () => Promise<void>): () => Promise<void> {
  let stopping: Promise<void> | undefined;
  const run = (): Promise<void> => {
    stopping ??= stop()
      .catch((error: unknown) => {
        process.stderr.write(`portcullis: error during shutdown: ${describeError(error)}\n`);
      })
      .finally(() => process.exit(ExitCode.Ok));
    return stopping;
  };
  process.once('SIGINT', () => void run());
  process.once('SIGTERM', () => void run());
  return run;
}
