#!/usr/bin/env node
// A hand-written 2025-era MCP server (no SDK) whose wire behaviour the tests control exactly.
//
//   node raw-server.mjs stdio            newline-delimited JSON-RPC on stdin/stdout
//   node raw-server.mjs stdio --strict   exits (status 1) when the first message is not `initialize`,
//                                        as rmcp-based servers do on a `server/discover` probe
//   node raw-server.mjs http             Streamable HTTP (2025 era, JSON and SSE responses) on
//                                        127.0.0.1:<random>; prints "LISTENING <port>" on stdout
//
// Tools: `echo {text}`; `burst {steps}` writes `steps` progress notifications and the result in a
// single write (one stdout write, one SSE chunk), so they reach the client in the same read.
import { createServer } from 'node:http';

const mode = process.argv[2];
const strict = process.argv.includes('--strict');
const PROTOCOL_VERSION = '2025-06-18';

/** Answers one message; returns the messages to send back together (possibly none). */
function handle(message) {
  if (message.id === undefined || typeof message.method !== 'string') return [];
  const reply = (result) => ({ jsonrpc: '2.0', id: message.id, result });
  switch (message.method) {
    case 'initialize':
      return [
        reply({
          protocolVersion: PROTOCOL_VERSION,
          capabilities: { tools: {} },
          serverInfo: { name: 'raw-test-server', version: '1.0.0' },
        }),
      ];
    case 'ping':
      return [reply({})];
    case 'tools/list':
      return [
        reply({
          tools: [
            { name: 'echo', inputSchema: { type: 'object', properties: { text: { type: 'string' } } } },
            { name: 'burst', inputSchema: { type: 'object', properties: { steps: { type: 'number' } } } },
          ],
        }),
      ];
    case 'tools/call': {
      const { name, arguments: args = {}, _meta: meta = {} } = message.params ?? {};
      if (name === 'echo') return [reply({ content: [{ type: 'text', text: String(args.text) }] })];
      if (name === 'burst') {
        const steps = Number(args.steps ?? 3);
        const out = [];
        if (meta.progressToken !== undefined) {
          for (let step = 1; step <= steps; step++) {
            out.push({
              jsonrpc: '2.0',
              method: 'notifications/progress',
              params: { progressToken: meta.progressToken, progress: step, total: steps },
            });
          }
        }
        out.push(reply({ content: [{ type: 'text', text: `${steps} steps` }] }));
        return out;
      }
      return [{ jsonrpc: '2.0', id: message.id, error: { code: -32602, message: `Unknown tool: ${name}` } }];
    }
    default:
      return [{ jsonrpc: '2.0', id: message.id, error: { code: -32601, message: 'Method not found' } }];
  }
}

if (mode === 'stdio') {
  let buffer = '';
  let first = true;
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (chunk) => {
    buffer += chunk;
    for (let index = buffer.indexOf('\n'); index >= 0; index = buffer.indexOf('\n')) {
      const line = buffer.slice(0, index).trim();
      buffer = buffer.slice(index + 1);
      if (line === '') continue;
      const message = JSON.parse(line);
      if (first && strict && message.method !== 'initialize') {
        console.error(`raw-server: first message was ${message.method}, not initialize: exiting`);
        process.exit(1);
      }
      first = false;
      const out = handle(message);
      if (out.length > 0) process.stdout.write(out.map((each) => `${JSON.stringify(each)}\n`).join(''));
    }
  });
  process.stdin.on('end', () => process.exit(0));
} else if (mode === 'http') {
  const server = createServer(async (req, res) => {
    if (req.method !== 'POST') return void res.writeHead(405).end();
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const message = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    const out = handle(message);
    if (out.length === 0) return void res.writeHead(202).end();
    if (out.length === 1) {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(out[0]));
      return;
    }
    // Every event in one chunk.
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    res.end(out.map((each) => `event: message\ndata: ${JSON.stringify(each)}\n\n`).join(''));
  });
  server.listen(0, '127.0.0.1', () => process.stdout.write(`LISTENING ${server.address().port}\n`));
  process.on('SIGTERM', () => process.exit(0));
} else {
  console.error('usage: raw-server.mjs stdio [--strict] | http');
  process.exit(2);
}
