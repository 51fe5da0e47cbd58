import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { GATEWAY_BIN, ROOT } from './support/processes.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built CLI. None of these invocations gets as far as reading its (absent) config file. */
function cli(...args: string[]): Promise<Run> {
  return new Promise((done) => {
    execFile(process.execPath, [GATEWAY_BIN, ...args], { cwd: ROOT, timeout: 30_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
      done({ code, stdout, stderr });
    });
  });
}

const MISSING_CONFIG = '/nonexistent/portcullis.yaml';

describe('commander usage errors exit 2 in every command, naming the problem', () => {
  it.each([
    {
      what: 'an invalid choice (upstream add --transport)',
      args: ['upstream', 'add', 'x', '--url', 'http://127.0.0.1:1/mcp', '--transport', 'bogus', '-c', MISSING_CONFIG],
      says: /argument 'bogus' is invalid\. Allowed choices are streamable-http, sse/,
    },
    {
      what: 'a missing required option (keys create without --name)',
      args: ['keys', 'create', '-c', MISSING_CONFIG],
      says: /required option '--name <name>' not specified/,
    },
    {
      what: 'an unknown option (replay --bogus)',
      args: ['replay', 'some-session', '-c', MISSING_CONFIG, '--bogus'],
      says: /unknown option '--bogus'/,
    },
    {
      what: 'an InvalidArgumentError from an option parser (sessions list --decision)',
      args: ['sessions', 'list', '-c', MISSING_CONFIG, '--decision', 'bogus'],
      says: /option '--decision <decision>' argument 'bogus' is invalid\. a decision is one of allow, deny/,
    },
    {
      what: 'an InvalidArgumentError from an option parser (serve --port)',
      args: ['serve', '-c', MISSING_CONFIG, '--port', '99999'],
      says: /option '--port <port>' argument '99999' is invalid/,
    },
    {
      what: 'a missing argument (config validate)',
      args: ['config', 'validate'],
      says: /missing required argument 'file'/,
    },
    { what: 'an unknown command', args: ['frobnicate'], says: /unknown command 'frobnicate'/ },
    { what: 'an unknown subcommand', args: ['keys', 'frobnicate'], says: /unknown command 'frobnicate'/ },
  ])('$what', async ({ args, says }) => {
    const run = await cli(...args);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^error: /);
    expect(run.stderr).toMatch(says);
    expect(run.stdout).toBe('');
  });

  it('--help and --version still exit 0, on stdout', async () => {
    const help = await cli('--help');
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help.stdout).toMatch(/^Usage: portcullis /);

    const subHelp = await cli('sessions', 'list', '--help');
    expect(subHelp).toMatchObject({ code: 0, stderr: '' });
    expect(subHelp.stdout).toMatch(/^Usage: portcullis sessions list /);

    const helpCommand = await cli('help', 'keys');
    expect(helpCommand).toMatchObject({ code: 0, stderr: '' });
    expect(helpCommand.stdout).toMatch(/^Usage: portcullis keys /);

    const version = await cli('--version');
    expect(version).toMatchObject({ code: 0, stderr: '' });
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
  });
});
