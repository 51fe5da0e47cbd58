export { buildProgram, ExitCode, VERSION } from './cli.js';
export { type GatewayRuntime, startGatewayRuntime } from './runtime.js';
