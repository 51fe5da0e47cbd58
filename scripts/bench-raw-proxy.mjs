#!/usr/bin/env node
// Reference for the hop benchmarks (not a gateway): the least a Node.js HTTP proxy in front of one
// Streamable HTTP MCP server does per call — read and parse the JSON body, send it on over a
// keep-alive connection, read the answer (JSON, or SSE up to the response event) and answer with
// JSON. No protocol checks, no routing, no policy. Prints `listening on <url>/mcp` on stderr.
//
//   node scripts/bench-raw-proxy.mjs http://127.0.0.1:PORT/mcp
import { Agent, createServer, request } from 'node:http';

const target = new URL(process.argv[2] ?? '');
// Free sockets idle for 4 s are closed (the agent destroys a free socket that times out), before
// the fixture's own 5 s keep-alive timeout could close one under a request.
const agent = new Agent({ keepAlive: true, timeout: 4_000 });
const FORWARDED = ['accept', 'content-type', 'mcp-session-id', 'mcp-protocol-version', 'mcp-method', 'mcp-name'];

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (chunk) => chunks.push(chunk));
  req.on('end', () => {
    const text = chunks.length > 0 ? JSON.stringify(JSON.parse(Buffer.concat(chunks).toString('utf8'))) : undefined;
    const headers = {};
    for (const name of FORWARDED) if (req.headers[name] !== undefined) headers[name] = req.headers[name];
    if (text !== undefined) headers['content-length'] = Buffer.byteLength(text);
    const upstream = request(target, { method: req.method, headers, agent }, (answer) => {
      const type = answer.headers['content-type'] ?? '';
      const session = answer.headers['mcp-session-id'];
      const own = session === undefined ? {} : { 'mcp-session-id': session };
      if (req.method !== 'POST' || !type.includes('text/event-stream')) {
        res.writeHead(answer.statusCode ?? 502, { ...own, ...(type && { 'content-type': type }) });
        answer.pipe(res);
        return;
      }
      let buffered = '';
      answer.setEncoding('utf8');
      answer.on('data', (data) => {
        buffered += data;
        for (let end = buffered.indexOf('\n\n'); end !== -1; end = buffered.indexOf('\n\n')) {
          const event = buffered.slice(0, end);
          buffered = buffered.slice(end + 2);
          const data = event
            .split('\n')
            .filter((line) => line.startsWith('data:'))
            .map((line) => line.slice(5).trim())
            .join('\n');
          if (data === '') continue;
          const message = JSON.parse(data);
          if (!('result' in message) && !('error' in message)) continue;
          const body = JSON.stringify(message);
          res.writeHead(200, { ...own, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
          res.end(body);
        }
      });
    });
    upstream.on('error', () => res.destroy());
    upstream.end(text);
  });
});

server.listen(0, '127.0.0.1', () => {
  process.stderr.write(`listening on http://127.0.0.1:${server.address().port}/mcp\n`);
});
