import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureInspector, type InspectorTool } from './support/e2e-tools.js';
import { gatewayConfig, type HttpGateway, startHttpGateway, stdioEverything } from './support/gateway.js';
import { cleanupAll, GATEWAY_BIN, ROOT, tempDir, writeConfig } from './support/processes.js';

/**
 * The MCP Inspector CLI (2.x, on Node >= 22.19, installed into `.e2e-tools/`) against
 * `portcullis stdio` and `portcullis serve`, with server-everything as the upstream.
 */
const run = promisify(execFile);
const CONNECT_TIMEOUT_MS = 45_000;
let inspector: InspectorTool;
let home: string;
let gateway: HttpGateway;
const upstreams = { everything: stdioEverything() };

beforeAll(async () => {
  [inspector, gateway] = await Promise.all([ensureInspector(), startHttpGateway({ upstreams })]);
  // The Inspector keeps a catalog and secrets under $HOME; keep them out of the real one.
  home = tempDir();
}, 300_000);

afterAll(async () => {
  await cleanupAll();
});

interface InspectorJson {
  result?: { tools?: { name: string }[]; content?: { type: string; text?: string }[] };
}

async function inspectorCli(target: string[], method: string[]): Promise<InspectorJson> {
  const { stdout } = await run(
    inspector.node,
    // The Inspector gives a server 15 s to connect by default; `portcullis stdio` starts its
    // upstream child and embedded store first, which takes longer on a loaded 2-core machine.
    [
      inspector.launcher,
      '--cli',
      '--format',
      'json',
      '--connect-timeout',
      String(CONNECT_TIMEOUT_MS),
      ...method,
      ...target,
    ],
    { cwd: ROOT, timeout: 70_000, env: { ...process.env, HOME: home }, maxBuffer: 16 * 1024 * 1024 },
  );
  return JSON.parse(stdout) as InspectorJson;
}

describe('MCP Inspector CLI', () => {
  it('lists and calls server-everything tools through portcullis stdio', async () => {
    const configFile = writeConfig(gatewayConfig({ upstreams }));
    const target = ['--', process.execPath, GATEWAY_BIN, 'stdio', '--config', configFile];
    const listed = await inspectorCli(target, ['--method', 'tools/list']);
    const names = (listed.result?.tools ?? []).map((tool) => tool.name);
    expect(names).toContain('everything__echo');
    expect(names.every((name) => name.startsWith('everything__'))).toBe(true);
    const called = await inspectorCli(target, [
      '--method',
      'tools/call',
      '--tool-name',
      'everything__echo',
      '--tool-arg',
      'message=hello inspector',
    ]);
    expect(called).toEqual({ result: { content: [{ type: 'text', text: 'Echo: hello inspector' }] } });
  }, 150_000);

  it('lists and calls server-everything tools through portcullis serve', async () => {
    const target = ['--transport', 'http', '--server-url', gateway.mcpUrl];
    const listed = await inspectorCli(target, ['--method', 'tools/list']);
    expect((listed.result?.tools ?? []).map((tool) => tool.name)).toContain('everything__echo');
    const called = await inspectorCli(target, [
      '--method',
      'tools/call',
      '--tool-name',
      'everything__echo',
      '--tool-arg',
      'message=over http',
    ]);
    expect(called.result?.content).toEqual([{ type: 'text', text: 'Echo: over http' }]);
  }, 150_000);
});
