import type { Readable, Writable } from 'node:stream';
import {
  type JSONRPCMessage,
  parseJSONRPCMessage,
  serializeMessage,
  type Transport,
} from '@modelcontextprotocol/server';
import { serveStdio } from '@modelcontextprotocol/server/stdio';
import { type Identity, RpcCode } from '@portcullis/core';
import type { Gateway } from '@portcullis/gateway';

/**
 * Newline-delimited JSON-RPC over a pair of streams, answering bad input instead of dying: a line
 * that is not JSON gets -32700, JSON that is not a JSON-RPC message gets -32600, and a line over
 * the size limit is discarded up to its newline and answered with an error — the connection
 * stays usable in every case (the SDK's own stdio transport closes on an oversized line).
 */
export class GatewayStdioTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;
  private chunks: Buffer[] = [];
  private buffered = 0;
  private discarding = false;
  private closed = false;

  constructor(
    private readonly input: Readable,
    private readonly output: Writable,
    private readonly maxMessageBytes: number,
    /** Called once the connection has ended, after the protocol layer's own `onclose`. */
    private readonly onEnded: () => void = () => undefined,
    /** Sees every well-formed inbound message before the protocol layer does. */
    private readonly onInbound: (message: JSONRPCMessage) => void = () => undefined,
  ) {}

  async start(): Promise<void> {
    this.input.on('data', this.onData);
    this.input.on('end', this.onEnd);
    this.input.on('close', this.onEnd);
    this.input.on('error', this.onInputError);
  }

  private readonly onInputError = (error: Error): void => {
    this.onerror?.(error);
  };

  private readonly onEnd = (): void => {
    void this.close();
  };

  private readonly onData = (chunk: Buffer): void => {
    let start = 0;
    for (let newline = chunk.indexOf(10, start); newline !== -1; newline = chunk.indexOf(10, start)) {
      this.append(chunk.subarray(start, newline));
      this.completeLine();
      start = newline + 1;
    }
    if (start < chunk.length) this.append(chunk.subarray(start));
  };

  private append(part: Buffer): void {
    if (this.discarding || part.length === 0) return;
    if (this.buffered + part.length > this.maxMessageBytes) {
      this.discarding = true;
      this.chunks = [];
      this.buffered = 0;
      return;
    }
    this.chunks.push(part);
    this.buffered += part.length;
  }

  private completeLine(): void {
    if (this.discarding) {
      this.discarding = false;
      this.reject(RpcCode.MessageTooLarge, `Message exceeds the size limit of ${this.maxMessageBytes} bytes`);
      return;
    }
    const line = Buffer.concat(this.chunks, this.buffered).toString('utf8').replace(/\r$/, '');
    this.chunks = [];
    this.buffered = 0;
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      this.reject(RpcCode.ParseError, 'Parse error: the message is not valid JSON');
      return;
    }
    let message: JSONRPCMessage;
    try {
      message = parseJSONRPCMessage(parsed);
    } catch {
      this.reject(RpcCode.InvalidRequest, 'Invalid Request: not a JSON-RPC 2.0 message', idOf(parsed));
      return;
    }
    this.onInbound(message);
    this.onmessage?.(message);
  }

  private reject(code: number, message: string, id: string | number | null = null): void {
    void this.write({ jsonrpc: '2.0', id, error: { code, message } });
  }

  send(message: JSONRPCMessage): Promise<void> {
    return this.write(message);
  }

  private write(message: unknown): Promise<void> {
    if (this.closed) return Promise.reject(new Error('stdio transport is closed'));
    const text = serializeMessage(message as JSONRPCMessage);
    return new Promise((resolve, reject) => {
      this.output.write(text, (error) => (error ? reject(error) : resolve()));
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.input.off('data', this.onData);
    this.input.off('end', this.onEnd);
    this.input.off('close', this.onEnd);
    this.input.off('error', this.onInputError);
    this.input.pause();
    this.onclose?.();
    this.onEnded();
  }
}

function idOf(value: unknown): string | number | null {
  if (typeof value === 'object' && value !== null && 'id' in value) {
    const id = (value as { id: unknown }).id;
    if (typeof id === 'string' || typeof id === 'number') return id;
  }
  return null;
}

export interface StdioFrontOptions {
  readonly identity: Identity;
  readonly maxMessageBytes: number;
  readonly input?: Readable;
  readonly output?: Writable;
}

export interface StdioFront {
  /** Resolves when the agent closes its end. */
  readonly done: Promise<void>;
  close(): Promise<void>;
}

/** Serves one agent over stdio (the agent launched the gateway as its MCP server), in either era. */
export function serveGatewayOverStdio(gateway: Gateway, options: StdioFrontOptions): StdioFront {
  let resolveDone: () => void = () => undefined;
  const done = new Promise<void>((resolve) => {
    resolveDone = resolve;
  });
  // subscriptions/listen is served inside serveStdio; the tracker follows it to subscribe upstream.
  const listening = gateway.listenTracker();
  let sessionId: string | undefined;
  const transport = new GatewayStdioTransport(
    options.input ?? process.stdin,
    options.output ?? process.stdout,
    options.maxMessageBytes,
    () => {
      listening.close();
      resolveDone();
    },
    (message) => {
      listening.observe(message);
      gateway.observeInbound(sessionId, message);
    },
  );
  const handle = serveStdio(
    ({ era }) => {
      const session = gateway.createSession({ era, frontTransport: 'stdio', identity: options.identity });
      sessionId = session.id;
      return session.server;
    },
    { transport },
  );
  return {
    done,
    close: async () => {
      await handle.close();
      resolveDone();
    },
  };
}
