import type { EventId, EventStore, JSONRPCMessage, StreamId } from '@modelcontextprotocol/server';

interface StoredEvent {
  readonly id: EventId;
  readonly message: JSONRPCMessage;
}

/**
 * Keeps the last `capacity` messages of each of the last `maxStreams` SSE streams of one 2025-era
 * session, so a client that reconnects with `Last-Event-ID` gets what it missed. Every POST opens a
 * stream of its own, so both bounds matter: the least recently written stream falls off first.
 * Event ids are `<streamId>:<sequence>`, which lets a replay find its stream without an index.
 */
export class BoundedEventStore implements EventStore {
  /** Insertion order is recency order: a stream is re-inserted whenever it is written. */
  private readonly streams = new Map<StreamId, { next: number; events: StoredEvent[] }>();

  constructor(
    private readonly capacity = 256,
    private readonly maxStreams = 32,
  ) {}

  async storeEvent(streamId: StreamId, message: JSONRPCMessage): Promise<EventId> {
    let stream = this.streams.get(streamId);
    if (stream) {
      this.streams.delete(streamId);
    } else {
      stream = { next: 0, events: [] };
      if (this.streams.size >= this.maxStreams) {
        const oldest = this.streams.keys().next();
        if (!oldest.done) this.streams.delete(oldest.value);
      }
    }
    this.streams.set(streamId, stream);
    const id = `${streamId}:${stream.next++}`;
    stream.events.push({ id, message });
    if (stream.events.length > this.capacity) stream.events.shift();
    return id;
  }

  async getStreamIdForEventId(eventId: EventId): Promise<StreamId | undefined> {
    const separator = eventId.lastIndexOf(':');
    return separator === -1 ? undefined : eventId.slice(0, separator);
  }

  async replayEventsAfter(
    lastEventId: EventId,
    { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> },
  ): Promise<StreamId> {
    const streamId = (await this.getStreamIdForEventId(lastEventId)) ?? '';
    const stream = this.streams.get(streamId);
    if (!stream) return streamId;
    const after = Number(lastEventId.slice(streamId.length + 1));
    for (const event of stream.events) {
      const sequence = Number(event.id.slice(streamId.length + 1));
      if (sequence > after) await send(event.id, event.message);
    }
    return streamId;
  }
}
