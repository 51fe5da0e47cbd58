import type { EventId, EventStore, JSONRPCMessage, StreamId } from '@modelcontextprotocol/server';

export interface StoredEvent {
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
    return this.append(streamId, message);
  }

  /** Stores `message` as the next event of `streamId` and returns its id. */
  append(streamId: StreamId, message: JSONRPCMessage): EventId {
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
    return streamOf(eventId);
  }

  async replayEventsAfter(
    lastEventId: EventId,
    { send }: { send: (eventId: EventId, message: JSONRPCMessage) => Promise<void> },
  ): Promise<StreamId> {
    const replay = this.eventsAfter(lastEventId);
    for (const event of replay?.events ?? []) await send(event.id, event.message);
    return replay?.streamId ?? '';
  }

  /**
   * The events of `lastEventId`'s stream stored after it (none when the stream fell off), or
   * `undefined` when the id is not one this store mints.
   */
  eventsAfter(lastEventId: EventId): { streamId: StreamId; events: readonly StoredEvent[] } | undefined {
    const streamId = streamOf(lastEventId);
    if (streamId === undefined) return undefined;
    const stream = this.streams.get(streamId);
    if (!stream) return { streamId, events: [] };
    const after = Number(lastEventId.slice(streamId.length + 1));
    const events = stream.events.filter((event) => Number(event.id.slice(streamId.length + 1)) > after);
    return { streamId, events };
  }
}

function streamOf(eventId: EventId): StreamId | undefined {
  const separator = eventId.lastIndexOf(':');
  return separator === -1 ? undefined : eventId.slice(0, separator);
}
