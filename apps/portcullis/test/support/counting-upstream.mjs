#!/usr/bin/env node
// A stdio MCP upstream for the session-log tests whose effect can be observed: its `count` tool
// appends its argument `n` to the file named on the command line before answering, so a test
// knows exactly which calls reached an upstream (even when the gateway in front was killed).
import { appendFileSync } from 'node:fs';
import { McpServer } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import * as z from 'zod/v4';

const file = process.argv[2];
if (file === undefined) {
  process.stderr.write('usage: counting-upstream.mjs FILE\n');
  process.exit(2);
}

const handle = serveStdio(() => {
  const server = new McpServer({ name: 'counting-upstream', version: '1.0.0' });
  server.registerTool(
    'count',
    { description: 'Appends n to the count file, then answers', inputSchema: z.object({ n: z.number() }) },
    async ({ n }) => {
      appendFileSync(file, `${n}\n`);
      await new Promise((done) => setTimeout(done, 5));
      return { content: [{ type: 'text', text: `counted ${n}` }] };
    },
  );
  return server;
});
const stop = () => {
  handle.close().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.stdin.once('end', stop);
