import type { JSONRPCMessage } from '@modelcontextprotocol/server';
import { describe, expect, it } from 'vitest';
import { BoundedEventStore } from '../src/event-store.js';

const message = (n: number): JSONRPCMessage => ({ jsonrpc: '2.0', method: 'notifications/message', params: { n } });

async function replay(store: BoundedEventStore, after: string): Promise<{ stream: string; ids: string[] }> {
  const ids: string[] = [];
  const stream = await store.replayEventsAfter(after, {
    send: async (id) => {
      ids.push(id);
    },
  });
  return { stream, ids };
}

describe('BoundedEventStore', () => {
  it('replays what a stream sent after the last event the client saw', async () => {
    const store = new BoundedEventStore();
    const first = await store.storeEvent('s1', message(1));
    const second = await store.storeEvent('s1', message(2));
    await store.storeEvent('s2', message(3));
    const third = await store.storeEvent('s1', message(4));
    expect(await replay(store, first)).toEqual({ stream: 's1', ids: [second, third] });
    expect(await replay(store, third)).toEqual({ stream: 's1', ids: [] });
  });

  it('keeps only the last events of a stream', async () => {
    const store = new BoundedEventStore(2);
    const ids = [];
    for (let n = 0; n < 5; n++) ids.push(await store.storeEvent('s', message(n)));
    expect((await replay(store, ids[0] as string)).ids).toEqual([ids[3], ids[4]]);
  });

  it('forgets the least recently written stream once it holds too many (every POST opens one)', async () => {
    const store = new BoundedEventStore(256, 2);
    const a = await store.storeEvent('a', message(1));
    const b = await store.storeEvent('b', message(2));
    await store.storeEvent('a', message(3));
    await store.storeEvent('c', message(4));
    // `b` was written least recently, so it went; `a` stays.
    expect((await replay(store, b)).ids).toEqual([]);
    expect((await replay(store, a)).ids).toHaveLength(1);
  });
});
