#!/usr/bin/env node
// A legacy HTTP+SSE (2024-11-05) MCP server for the upstream tests, built on the official SDK v1
// (the v2 server has no SSE transport). Serves 127.0.0.1:<random> and prints "LISTENING <port>".
// GET /stats answers {aborted} as JSON: how many `slow` calls saw their abort signal.
import { createServer } from 'node:http';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { SSEServerTransport } from '@modelcontextprotocol/sdk/server/sse.js';
import * as z from 'zod/v4';

const stats = { aborted: 0 };
const transports = new Map();

function buildServer() {
  const server = new McpServer({ name: 'sse-test-server', version: '1.0.0' });
  server.registerTool('slow', { inputSchema: { ms: z.number() } }, async ({ ms }, extra) => {
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, ms);
      extra.signal.addEventListener('abort', () => {
        clearTimeout(timer);
        stats.aborted += 1;
        resolve();
      });
    });
    return { content: [{ type: 'text', text: 'done' }] };
  });
  return server;
}

const httpServer = createServer(async (req, res) => {
  const url = new URL(req.url ?? '/', 'http://127.0.0.1');
  if (req.method === 'GET' && url.pathname === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
  } else if (req.method === 'GET' && url.pathname === '/sse') {
    const transport = new SSEServerTransport('/messages', res);
    transports.set(transport.sessionId, transport);
    res.on('close', () => transports.delete(transport.sessionId));
    await buildServer().connect(transport);
  } else if (req.method === 'POST' && url.pathname === '/messages') {
    const transport = transports.get(url.searchParams.get('sessionId') ?? '');
    if (transport === undefined) return void res.writeHead(404).end();
    await transport.handlePostMessage(req, res);
  } else {
    res.writeHead(404).end();
  }
});
httpServer.listen(0, '127.0.0.1', () => process.stdout.write(`LISTENING ${httpServer.address().port}\n`));
process.on('SIGTERM', () => process.exit(0));
