#!/usr/bin/env node
// A small dual-era MCP server for the upstream tests, built on the official SDK v2.
//
//   node upstream-server.mjs stdio            serve one connection over stdio (2025 and 2026 era)
//   node upstream-server.mjs stdio --exit     exit at once with status 3 (a server that cannot start)
//   node upstream-server.mjs http             serve Streamable HTTP on 127.0.0.1:<random>; prints
//                                             "LISTENING <port>" on stdout; GET /stats answers the
//                                             method counts and abort count as JSON
//
// It is plain JavaScript so that the tests can spawn it with `node` directly.
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { toNodeHandler } from '@modelcontextprotocol/node';
import { createMcpHandler, inputRequired, McpServer } from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import * as z from 'zod/v4';

const mode = process.argv[2];
if (process.argv.includes('--exit')) process.exit(3);

const COUNTER_URI = 'mem://counter';
const stats = { aborted: 0, methods: {} };
const sleepers = [];
let counter = 0;
/** Set in HTTP mode: publishes change events to open `subscriptions/listen` streams. */
let httpNotifier;

function text(value) {
  return { content: [{ type: 'text', text: typeof value === 'string' ? value : JSON.stringify(value) }] };
}

function delay(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

function buildServer({ era }) {
  const server = new McpServer(
    { name: 'upstream-test-server', version: '1.0.0' },
    {
      capabilities: { resources: { subscribe: true, listChanged: true }, tools: { listChanged: true } },
      instructions: 'test server',
    },
  );
  const subscribed = new Set();
  const notifyCounterChanged = async () => {
    if (httpNotifier) httpNotifier.resourceUpdated(COUNTER_URI);
    else if (era === 'modern' || subscribed.has(COUNTER_URI))
      await server.server.sendResourceUpdated({ uri: COUNTER_URI });
  };

  server.registerTool('echo', { inputSchema: z.object({ text: z.string() }) }, async ({ text: value }) => text(value));

  server.registerTool('era', {}, async () => text(era));

  server.registerTool('slow', { inputSchema: z.object({ ms: z.number() }) }, async ({ ms }, ctx) => {
    await delay(ms, ctx.mcpReq.signal);
    if (ctx.mcpReq.signal.aborted) {
      stats.aborted += 1;
      console.error(`slow: aborted (${String(ctx.mcpReq.signal.reason)})`);
    }
    return text('done');
  });

  server.registerTool('progress', { inputSchema: z.object({ steps: z.number() }) }, async ({ steps }, ctx) => {
    const progressToken = ctx.mcpReq._meta?.progressToken;
    for (let step = 1; step <= steps; step++) {
      await delay(20);
      if (progressToken !== undefined) {
        await ctx.mcpReq.notify({
          method: 'notifications/progress',
          params: { progressToken, progress: step, total: steps, message: `step ${step}` },
        });
      }
    }
    return text(`${steps} steps`);
  });

  server.registerTool('spawn-sleeper', {}, async () => {
    const sleeper = spawn('sleep', ['1000'], { stdio: 'ignore' });
    sleepers.push(sleeper);
    return text({ pid: process.pid, sleeper: sleeper.pid });
  });

  server.registerTool('crash', {}, async () => {
    setTimeout(() => process.exit(3), 10);
    return text('crashing');
  });

  server.registerTool('stats', {}, async () => text({ ...stats, pid: process.pid }));

  server.registerTool('confirm', {}, async (ctx) => {
    if (era !== 'modern') return text('legacy: no input needed');
    if (ctx.mcpReq.inputResponses?.confirm === undefined) {
      return inputRequired({
        inputRequests: {
          confirm: inputRequired.elicit({
            message: 'Proceed?',
            requestedSchema: { type: 'object', properties: { ok: { type: 'boolean' } }, required: ['ok'] },
          }),
        },
      });
    }
    return text('confirmed');
  });

  server.registerTool('ask', {}, async (ctx) => {
    const answer = await ctx.mcpReq.elicitInput({
      message: 'Your name?',
      requestedSchema: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
    });
    return text(answer);
  });

  server.registerTool('sample', { inputSchema: z.object({ prompt: z.string() }) }, async ({ prompt }, ctx) => {
    const result = await ctx.mcpReq.requestSampling({
      messages: [{ role: 'user', content: { type: 'text', text: prompt } }],
      maxTokens: 20,
    });
    return text(result);
  });

  server.registerTool('roots', {}, async () => text(await server.server.listRoots()));

  server.registerTool('add-tool', { inputSchema: z.object({ name: z.string() }) }, async ({ name }) => {
    if (httpNotifier) httpNotifier.toolsChanged();
    else server.registerTool(name, {}, async () => text(name));
    return text(`added ${name}`);
  });

  server.registerTool('bump', {}, async () => {
    counter += 1;
    await notifyCounterChanged();
    return text(String(counter));
  });

  server.registerResource('counter', COUNTER_URI, { mimeType: 'text/plain' }, async (uri) => ({
    contents: [{ uri: uri.href, text: String(counter) }],
  }));
  if (era !== 'modern') {
    server.server.setRequestHandler('resources/subscribe', (request) => {
      subscribed.add(request.params.uri);
      return {};
    });
    server.server.setRequestHandler('resources/unsubscribe', (request) => {
      subscribed.delete(request.params.uri);
      return {};
    });
  }
  return server;
}

function countMethod(method) {
  if (typeof method === 'string') stats.methods[method] = (stats.methods[method] ?? 0) + 1;
}

if (mode === 'stdio') {
  // Count methods on the way in, before the SDK reads stdin.
  process.stdin.on('data', (chunk) => {
    for (const line of String(chunk).split('\n')) {
      try {
        countMethod(JSON.parse(line).method);
      } catch {
        // partial or empty line
      }
    }
  });
  serveStdio(buildServer);
} else if (mode === 'http') {
  const handler = createMcpHandler(buildServer);
  httpNotifier = handler.notify;
  const nodeHandler = toNodeHandler(handler);
  const httpServer = createServer(async (req, res) => {
    if (req.method === 'GET' && req.url === '/stats') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(stats));
      return;
    }
    if (req.method !== 'POST') return void nodeHandler(req, res);
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    let body;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      res.writeHead(400).end();
      return;
    }
    for (const message of Array.isArray(body) ? body : [body]) countMethod(message?.method);
    void nodeHandler(req, res, body);
  });
  httpServer.listen(0, '127.0.0.1', () => {
    process.stdout.write(`LISTENING ${httpServer.address().port}\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
} else {
  console.error('usage: upstream-server.mjs stdio|http');
  process.exit(2);
}
