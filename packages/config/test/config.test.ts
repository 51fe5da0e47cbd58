import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfigFile, parseConfig, upstreamSpecs } from '../src/index.js';

const FILE = 'portcullis.yaml';

/** Parses `text` expecting a ConfigError and returns it. */
function configError(text: string): ConfigError {
  try {
    parseConfig(text, FILE);
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected a ConfigError');
}

describe('parseConfig defaults', () => {
  const config = parseConfig(
    [
      'upstreams:',
      '  fs:',
      '    transport: stdio',
      '    command: node',
      '  remote:',
      '    transport: streamable-http',
      '    url: http://127.0.0.1:9000/mcp',
      '  bare:',
      '    transport: sse',
      '    url: http://127.0.0.1:9001/sse',
      '    prefix: false',
      '  renamed:',
      '    transport: stdio',
      '    command: node',
      '    prefix: other',
      '    isolation: shared',
    ].join('\n'),
    FILE,
  );

  it('fills server and gateway defaults', () => {
    expect(config.server).toEqual({
      host: '127.0.0.1',
      port: 8080,
      allowedHosts: [],
      allowedOrigins: [],
      maxMessageBytes: 4 * 1024 * 1024,
      sessionIdleTimeoutMs: 30 * 60 * 1000,
    });
    expect(config.gateway.separator).toBe('__');
    expect(config.gateway.name).toBe('portcullis');
    expect(config.logging.level).toBe('info');
    expect(config.identity).toEqual({ subject: 'local', groups: [] });
  });

  it('fills upstream defaults', () => {
    const fs = config.upstreams.fs;
    expect(fs).toMatchObject({ transport: 'stdio', command: 'node', args: [], env: {}, era: 'auto', disabled: false });
    expect(fs?.requestTimeoutMs).toBe(60_000);
  });

  it('resolves isolation and prefix per upstream, in file order', () => {
    const specs = upstreamSpecs(config);
    expect(specs.map((spec) => [spec.name, spec.isolation, spec.namePrefix])).toEqual([
      ['fs', 'per-session', 'fs'],
      ['remote', 'shared', 'remote'],
      ['bare', 'shared', undefined],
      ['renamed', 'shared', 'other'],
    ]);
  });

  it('accepts an empty upstream map and JSON input', () => {
    expect(parseConfig('{"upstreams": {}}', 'config.json').upstreams).toEqual({});
  });
});

describe('parseConfig errors', () => {
  it('names file, line and column of a YAML syntax error', () => {
    const error = configError(['upstreams:', '  fs:', '    transport: stdio', '    command: [node', ''].join('\n'));
    expect(error.code).toBe('config.invalid');
    expect(error.file).toBe(FILE);
    const issue = error.issues[0];
    expect(issue?.line).toBeTypeOf('number');
    expect(issue?.column).toBeTypeOf('number');
    expect(error.message).toMatch(new RegExp(`^${FILE.replace('.', '\\.')}:\\d+:\\d+: `));
  });

  it('names the file and the reason of a YAML syntax error', () => {
    const error = configError(['upstreams:', '  fs:', '    transport: stdio', '    command: [node', ''].join('\n'));
    expect(error.code).toBe('config.invalid');
    expect(error.message.startsWith(`${FILE}`)).toBe(true);
    expect(error.issues[0]?.reason).toMatch(/flow sequence/i);
  });

  it('reports the line of a duplicate key', () => {
    const error = configError(
      ['upstreams:', '  fs:', '    transport: stdio', '    transport: stdio', '    command: node'].join('\n'),
    );
    expect(error.issues[0]?.line).toBe(4);
    expect(error.message).toContain(`${FILE}:4:`);
  });

  it('names an unknown key with its path and line', () => {
    const error = configError(
      [
        'server:',
        '  port: 8080',
        'upstreams:',
        '  fs:',
        '    transport: stdio',
        '    command: node',
        '    comand: typo',
      ].join('\n'),
    );
    expect(error.issues).toHaveLength(1);
    expect(error.issues[0]).toMatchObject({ path: 'upstreams.fs', reason: 'unknown key "comand"' });
    expect(error.issues[0]?.line).toBe(7);
    expect(error.message).toBe(`${FILE}:7:5 at upstreams.fs: unknown key "comand"`);
  });

  it('points an unknown key at its own line', () => {
    const error = configError(
      [
        'server:',
        '  port: 8080',
        'upstreams:',
        '  fs:',
        '    transport: stdio',
        '    command: node',
        '    comand: typo',
      ].join('\n'),
    );
    expect(error.issues[0]?.line).toBe(7);
  });

  it('names a wrong type with its path and line', () => {
    const error = configError(['server:', '  port: "eighty"', 'upstreams: {}'].join('\n'));
    expect(error.issues[0]).toMatchObject({ path: 'server.port', line: 2 });
    expect(error.message).toContain(`${FILE}:2:`);
    expect(error.message).toContain('at server.port');
  });

  it('names a bad upstream name', () => {
    const error = configError(['upstreams:', '  My_Server:', '    transport: stdio', '    command: node'].join('\n'));
    const issue = error.issues.find((candidate) => candidate.path.startsWith('upstreams'));
    expect(issue?.path).toBe('upstreams.My_Server');
    // The line of the upstream's definition (its value map starts on line 3).
    expect(issue?.line).toBe(3);
    expect(error.message).toContain(`${FILE}:3:5 at upstreams.My_Server`);
  });

  it('says what a valid upstream name looks like', () => {
    const error = configError(['upstreams:', '  My_Server:', '    transport: stdio', '    command: node'].join('\n'));
    expect(error.issues[0]?.reason).toContain('lowercase');
  });

  it('names a bad URL', () => {
    const error = configError(
      ['upstreams:', '  remote:', '    transport: streamable-http', '    url: not a url'].join('\n'),
    );
    expect(error.issues[0]).toMatchObject({ path: 'upstreams.remote.url', line: 4 });
    expect(error.message).toContain(`${FILE}:4:`);
  });

  it('names a missing command at the upstream that lacks it', () => {
    const error = configError(['upstreams:', '  fs:', '    transport: stdio', '    args: [a]'].join('\n'));
    // A missing key is reported at the map that should hold it.
    expect(error.issues[0]).toMatchObject({ path: 'upstreams.fs.command', line: 3, column: 5 });
    expect(error.message).toBe(
      `${FILE}:3:5 at upstreams.fs.command: Invalid input: expected string, received undefined`,
    );
  });

  it('rejects a bad prefix and a bad separator', () => {
    const error = configError(
      [
        'gateway:',
        '  separator: "/"',
        'upstreams:',
        '  fs:',
        '    transport: stdio',
        '    command: node',
        '    prefix: Bad',
      ].join('\n'),
    );
    expect(error.issues.map((issue) => issue.path).sort()).toEqual(['gateway.separator', 'upstreams.fs.prefix']);
  });

  it('reports the array index in the path', () => {
    const error = configError(
      ['upstreams:', '  fs:', '    transport: stdio', '    command: node', '    args: [ok, 3]'].join('\n'),
    );
    expect(error.issues[0]?.path).toBe('upstreams.fs.args[1]');
    expect(error.issues[0]?.line).toBe(5);
  });
});

describe('loadConfigFile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'portcullis-config-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads and validates a file', async () => {
    const file = join(dir, 'ok.yaml');
    await writeFile(file, 'upstreams:\n  fs:\n    transport: stdio\n    command: node\n');
    expect((await loadConfigFile(file)).upstreams.fs?.transport).toBe('stdio');
  });

  it('names a missing file', async () => {
    const file = join(dir, 'missing.yaml');
    const error = await loadConfigFile(file).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(`${file}: file not found`);
    expect((error as ConfigError).cause).toMatchObject({ code: 'ENOENT' });
  });

  it('names the file in validation errors', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(file, 'upstreams:\n  fs:\n    transport: stdio\n');
    await expect(loadConfigFile(file)).rejects.toThrow(`${file}:3:5 at upstreams.fs.command`);
  });
});
