// Bench-only host for the gateway. Two jobs:
// - started with `node --expose-gc`, it answers SIGUSR2 with a line `heap <bytes>` on stderr after
//   two full collections (the product exposes nothing of the kind);
// - with `--pass-through` before the CLI arguments it serves the gateway with every pipeline slot
//   passing through (no session log, no policy: the bare cost of the hop, as the benchmark defines
//   it) instead of running the `portcullis` program, which adds the session log.
//   usage: node scripts/bench-gateway-host.mjs [--pass-through] serve|stdio --config FILE [--port 0]
process.on('SIGUSR2', () => {
  globalThis.gc?.();
  globalThis.gc?.();
  process.stderr.write(`heap ${process.memoryUsage().heapUsed}\n`);
});

const args = process.argv.slice(2);
if (args[0] !== '--pass-through') {
  await import('../apps/portcullis/dist/bin.js');
} else {
  const [, mode, , configFile] = args;
  const { loadConfigFile, upstreamSpecs } = await import('../packages/config/dist/index.js');
  const { Gateway, providerFromPool } = await import('../packages/gateway/dist/index.js');
  const { StaticUpstreamRegistry, UpstreamPool } = await import('../packages/upstream/dist/index.js');
  const { configuredIdentity } = await import('../packages/core/dist/index.js');
  const { serveGatewayOverHttp, serveGatewayOverStdio } = await import('../packages/front/dist/index.js');
  const config = await loadConfigFile(configFile);
  const portIndex = args.indexOf('--port');
  if (portIndex !== -1) config.server.port = Number(args[portIndex + 1]);
  const logger = silentLogger();
  const pool = new UpstreamPool(new StaticUpstreamRegistry(upstreamSpecs(config)), { logger });
  pool.start();
  const gateway = new Gateway({ config, provider: providerFromPool(pool), logger });
  await Promise.all(gateway.provider.specs().map((spec) => gateway.provider.primary(spec.name)?.ready()));
  const stop = async () => {
    await gateway.close();
    await pool.close();
    process.exit(0);
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  if (mode === 'serve') {
    const front = await serveGatewayOverHttp(gateway, { server: config.server, logger, anonymous: true });
    process.stderr.write(`portcullis listening on ${front.url}/mcp\n`);
  } else {
    const front = serveGatewayOverStdio(gateway, {
      identity: configuredIdentity('bench', []),
      maxMessageBytes: config.server.maxMessageBytes,
    });
    await front.done;
    await stop();
  }
}

function silentLogger() {
  const logger = {
    level: 'silent',
    child: () => logger,
    flush: () => undefined,
  };
  for (const level of ['fatal', 'error', 'warn', 'info', 'debug', 'trace']) logger[level] = () => undefined;
  return logger;
}
