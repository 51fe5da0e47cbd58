import { Client, StreamableHTTPClientTransport } from '@modelcontextprotocol/client';
import {
  CLIENT_CAPABILITIES_META_KEY,
  CLIENT_INFO_META_KEY,
  PROTOCOL_VERSION_META_KEY,
} from '@modelcontextprotocol/server';
import type { FixtureHttpServer } from '@portcullis/fixture-server';
import type { UpstreamPool } from '@portcullis/upstream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
// The HTTP front is where 2026-era headers arrive; loaded from source (it depends on this package).
import { type HttpFront, serveGatewayOverHttp } from '../../front/src/index.js';
import { Gateway, providerFromPool } from '../src/index.js';
import { mcpParamHeaders } from '../src/param-headers.js';
import { configFor, connectClient, connectedPool, silentLogger, startFixture, textOf } from './support.js';

const SCHEMA = {
  type: 'object',
  properties: {
    region: { type: 'string', 'x-mcp-header': 'Region' },
    nested: { type: 'object', properties: { count: { type: 'integer', 'x-mcp-header': 'Count' } } },
    listed: {
      type: 'array',
      items: { type: 'object', properties: { bad: { type: 'string', 'x-mcp-header': 'Bad' } } },
    },
    flag: { type: 'boolean', 'x-mcp-header': 'Flag' },
  },
};

describe('Mcp-Param-* headers built for upstream calls', () => {
  it('mirrors declared arguments, encodes what is not a plain field value, omits null and absent ones', () => {
    expect(mcpParamHeaders(SCHEMA, { region: 'eu-west', nested: { count: 3 }, flag: false })).toEqual({
      'Mcp-Param-Region': 'eu-west',
      'Mcp-Param-Count': '3',
      'Mcp-Param-Flag': 'false',
    });
    expect(mcpParamHeaders(SCHEMA, { region: 'Grüße' })).toEqual({
      'Mcp-Param-Region': `=?base64?${Buffer.from('Grüße').toString('base64')}?=`,
    });
    expect(mcpParamHeaders(SCHEMA, { region: ' padded' })?.['Mcp-Param-Region']).toMatch(/^=\?base64\?/);
    expect(mcpParamHeaders(SCHEMA, { region: '=?base64?abc?=' })?.['Mcp-Param-Region']).toBe(
      `=?base64?${Buffer.from('=?base64?abc?=').toString('base64')}?=`,
    );
    expect(mcpParamHeaders(SCHEMA, { region: null, listed: [{ bad: 'x' }] })).toBeUndefined();
    expect(mcpParamHeaders({ type: 'object', properties: { a: { type: 'string' } } }, { a: 'x' })).toBeUndefined();
    expect(mcpParamHeaders(undefined, { region: 'x' })).toBeUndefined();
  });
});

describe('Mcp-Param-* headers through the gateway (2026-era HTTP upstream)', () => {
  let fixture: FixtureHttpServer;
  let pool: UpstreamPool;
  let gateway: Gateway;
  let front: HttpFront;
  const config = () => configFor([{ name: 'h', url: fixture.url }], {});

  beforeAll(async () => {
    fixture = await startFixture('headers');
    pool = await connectedPool(config());
    gateway = new Gateway({ config: config(), provider: providerFromPool(pool), logger: silentLogger });
    front = await serveGatewayOverHttp(gateway, {
      server: { ...config().server, host: '127.0.0.1', port: 0 },
      logger: silentLogger,
    });
  });

  afterAll(async () => {
    await front?.close();
    await gateway?.close();
    await pool?.close();
    await fixture?.close();
  });

  const call = (region: string, headers: Record<string, string>) =>
    fetch(`${front.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'h__test_custom_headers',
        ...headers,
      },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 7,
        method: 'tools/call',
        params: {
          name: 'h__test_custom_headers',
          arguments: { region },
          _meta: {
            [PROTOCOL_VERSION_META_KEY]: '2026-07-28',
            [CLIENT_INFO_META_KEY]: { name: 'raw', version: '1' },
            [CLIENT_CAPABILITIES_META_KEY]: {},
          },
        },
      }),
    });

  it("validates an agent's headers against the merged catalog's schema at the front (-32020, HTTP 400)", async () => {
    const mismatch = await call('us-east', { 'mcp-param-region': 'eu-west' });
    expect(mismatch.status).toBe(400);
    expect(await mismatch.json()).toMatchObject({
      id: 7,
      error: { code: -32020, data: { mismatch: { header: 'Mcp-Param-Region' } } },
    });
    const missing = await call('us-east', {});
    expect(missing.status).toBe(400);
    expect(await missing.json()).toMatchObject({ error: { code: -32020 } });
    const matching = await call('Grüße', {
      'mcp-param-region': `=?base64?${Buffer.from('Grüße').toString('base64')}?=`,
    });
    expect(matching.status).toBe(200);
    expect(await matching.text()).toContain('region=Grüße');
  });

  it('sends the headers upstream for every agent: a 2026-era SDK client and a 2025-era one', async () => {
    const modern = new Client(
      { name: 'modern-agent', version: '1.0.0' },
      { versionNegotiation: { mode: { pin: '2026-07-28' } } },
    );
    await modern.connect(new StreamableHTTPClientTransport(new URL(`${front.url}/mcp`)));
    try {
      await modern.listTools();
      expect(textOf(await modern.callTool({ name: 'h__test_custom_headers', arguments: { region: 'ap-south' } }))).toBe(
        'region=ap-south',
      );
    } finally {
      await modern.close();
    }
    const legacy = await connectClient(gateway);
    try {
      expect(textOf(await legacy.callTool({ name: 'h__test_custom_headers', arguments: { region: 'eu-north' } }))).toBe(
        'region=eu-north',
      );
    } finally {
      await legacy.close();
    }
  });
});
