import type { RecordedEvent, RecordedToolCall, SessionSummary } from '@portcullis/store';

/** ANSI styling, or none (piped output, `NO_COLOR`). */
export interface Style {
  dim(text: string): string;
  bold(text: string): string;
  red(text: string): string;
  green(text: string): string;
  yellow(text: string): string;
  cyan(text: string): string;
  magenta(text: string): string;
}

const code = (open: number, close: number) => (text: string) => `\u001b[${open}m${text}\u001b[${close}m`;
const plain = (text: string) => text;

export function styleFor(enabled: boolean): Style {
  if (!enabled)
    return { dim: plain, bold: plain, red: plain, green: plain, yellow: plain, cyan: plain, magenta: plain };
  return {
    dim: code(2, 22),
    bold: code(1, 22),
    red: code(31, 39),
    green: code(32, 39),
    yellow: code(33, 39),
    cyan: code(36, 39),
    magenta: code(35, 39),
  };
}

/** Colour only on a terminal, and never with `NO_COLOR` set (https://no-color.org). */
export function colourWanted(stream: NodeJS.WriteStream, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && (env.NO_COLOR === undefined || env.NO_COLOR === '');
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function clip(text: string, max: number): string {
  const oneLine = text.replace(/\s+/g, ' ');
  return oneLine.length > max ? `${oneLine.slice(0, max - 1)}…` : oneLine;
}

/** `+12.345s` from the session start. */
export function offset(at: string, start: number): string {
  const seconds = (Date.parse(at) - start) / 1000;
  return `+${seconds.toFixed(3)}s`;
}

/** The target a request names: tool or prompt name, resource URI. */
export function targetOf(payload: unknown): string | undefined {
  if (!isRecord(payload) || !isRecord(payload.params)) return undefined;
  const { name, uri } = payload.params;
  if (typeof name === 'string') return name;
  if (typeof uri === 'string') return uri;
  return undefined;
}

/** A result in a few words: its text (clipped), the kinds of its other content, or its error. */
export function summarizeResult(payload: unknown, max = 80): string {
  if (!isRecord(payload)) return '';
  if (isRecord(payload.error)) {
    return `error ${String(payload.error.code)}: ${clip(String(payload.error.message ?? ''), max)}`;
  }
  const result = isRecord(payload.result) ? payload.result : payload;
  const parts: string[] = [];
  if (result.isError === true) parts.push('tool error:');
  const content = Array.isArray(result.content)
    ? result.content
    : Array.isArray(result.contents)
      ? result.contents
      : [];
  for (const block of content) {
    if (!isRecord(block)) continue;
    if (typeof block.text === 'string') parts.push(JSON.stringify(clip(block.text, max)));
    else if (typeof block.type === 'string') parts.push(`[${block.type}]`);
    else if (typeof block.blob === 'string') parts.push('[blob]');
  }
  if (Array.isArray(result.messages)) parts.push(`${result.messages.length} message(s)`);
  if (parts.length === 0) {
    const keys = Object.keys(result).filter((key) => key !== '_meta');
    parts.push(keys.length === 0 ? '{}' : `{${keys.join(', ')}}`);
  }
  return parts.join(' ');
}

/** `email×2, card×1` from a redaction summary (or a `{ arguments, result }` pair of them). */
export function summarizeRedaction(redaction: unknown): string {
  const totals = new Map<string, number>();
  const visit = (value: unknown, depth: number): void => {
    if (!isRecord(value) || depth > 3) return;
    if (isRecord(value.byType)) {
      for (const [type, count] of Object.entries(value.byType)) {
        if (typeof count === 'number' && count > 0) totals.set(type, (totals.get(type) ?? 0) + count);
      }
      return;
    }
    for (const inner of Object.values(value)) visit(inner, depth + 1);
  };
  visit(redaction, 0);
  return [...totals].map(([type, count]) => `${type}×${count}`).join(', ');
}

/** The result's part of a tool call's `redaction` column (the summary itself, or `{ arguments, result }`). */
function resultRedaction(redaction: unknown): unknown {
  if (!isRecord(redaction)) return undefined;
  return 'byType' in redaction ? redaction : redaction.result;
}

/** Links each tool call to its request event (by sequence) and its response (by JSON-RPC id). */
export function indexCalls(calls: readonly RecordedToolCall[]): Map<number, RecordedToolCall> {
  const bySeq = new Map<number, RecordedToolCall>();
  for (const call of calls) if (call.requestSeq !== null) bySeq.set(call.requestSeq, call);
  return bySeq;
}

const ARROW: Readonly<Record<string, string>> = { from_agent: '→', to_agent: '←' };

/**
 * A timeline renderer that keeps the pairing state across calls, so `--follow` can feed it events
 * page by page.
 */
export class Timeline {
  readonly #start: number;
  readonly #style: Style;
  readonly #calls: Map<number, RecordedToolCall>;
  readonly #open = new Map<string, { call: RecordedToolCall | undefined; target: string | undefined }>();

  constructor(start: string, calls: readonly RecordedToolCall[], style: Style) {
    this.#start = Date.parse(start);
    this.#calls = indexCalls(calls);
    this.#style = style;
  }

  /** Newer tool-call rows (a followed session); rows already known are replaced. */
  addCalls(calls: readonly RecordedToolCall[]): void {
    for (const [seq, call] of indexCalls(calls)) this.#calls.set(seq, call);
  }

  line(event: RecordedEvent): string {
    const s = this.#style;
    const head = `${s.dim(offset(event.occurredAt, this.#start).padStart(10))} ${s.dim(`#${event.seq}`.padEnd(5))} ${ARROW[event.direction] ?? '?'} ${event.kind.padEnd(12)} ${s.bold(event.method ?? '-')}`;
    const parts: string[] = [head];
    const key = `${event.rpcId ?? ''}`;
    if (event.kind === 'request') {
      const target = targetOf(event.payload);
      const call = this.#calls.get(event.seq);
      if (event.rpcId !== null) this.#open.set(key, { call, target });
      if (target !== undefined) parts.push(s.cyan(target));
      if (event.upstream !== null) parts.push(s.dim(`@${event.upstream}`));
      const params = isRecord(event.payload) && isRecord(event.payload.params) ? event.payload.params : undefined;
      const args = call?.arguments ?? params?.arguments;
      if (args !== undefined) parts.push(clip(JSON.stringify(args), 100));
      if (call !== undefined) {
        parts.push(this.#decision(call));
        if (call.approvalRef !== null) parts.push(s.magenta(`approval ${call.approvalRef}`));
        const redacted = summarizeRedaction(isRecord(call.redaction) ? call.redaction.arguments : undefined);
        if (redacted !== '') parts.push(s.yellow(`args redacted: ${redacted}`));
      }
    } else if (event.kind === 'response') {
      const pending = event.rpcId === null ? undefined : this.#open.get(key);
      if (pending !== undefined) this.#open.delete(key);
      if (pending?.target !== undefined) parts.push(s.cyan(pending.target));
      const summary = summarizeResult(event.payload);
      const failed = /^error |^tool error:/.test(summary);
      parts.push(failed ? s.red(summary) : summary);
      if (event.latencyMs !== null) parts.push(s.dim(`(${event.latencyMs.toFixed(1)} ms)`));
      const call = pending?.call;
      if (call !== undefined) {
        const redacted = summarizeRedaction(resultRedaction(call.redaction));
        if (redacted !== '') parts.push(s.yellow(`redacted: ${redacted}`));
      }
    } else {
      const params = isRecord(event.payload) ? (event.payload.params ?? event.payload) : event.payload;
      parts.push(s.dim(clip(JSON.stringify(params) ?? '', 100)));
    }
    return parts.join('  ');
  }

  #decision(call: RecordedToolCall): string {
    const s = this.#style;
    const rule = call.decisionRule === null ? '' : ` (${call.decisionRule})`;
    const text = `${call.decision}${rule}${call.forwarded ? '' : ' not forwarded'}`;
    if (call.decision === 'allow') return s.green(text);
    if (call.decision === 'deny' || call.decision === 'hide') return s.red(text);
    return s.yellow(text);
  }
}

/** The session header, as text lines. */
export function headerLines(session: SessionSummary): string[] {
  return [
    `session   ${session.id}${session.replayOf === null ? '' : ` (replay of ${session.replayOf})`}`,
    `identity  ${session.identity}${session.groups.length > 0 ? ` [${session.groups.join(', ')}]` : ''} (${session.authMethod})`,
    `client    ${session.clientName ?? '-'} ${session.clientVersion ?? ''}`.trimEnd(),
    `era       ${session.era} ${session.protocolVersion} over ${session.frontTransport}`,
    `started   ${session.startedAt}`,
    `ended     ${session.endedAt === null ? 'still open' : `${session.endedAt} (${session.endReason ?? 'ended'})`}`,
  ];
}

/** One exported event of `--format jsonl`: the stored row, payload as recorded, with its chain hashes. */
export function jsonlRecord(sessionId: string, event: RecordedEvent): string {
  return JSON.stringify({ sessionId, ...event });
}

const mdCell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** A Markdown incident report: header, a table of the tool calls, then the plain timeline. */
export function markdownReport(
  session: SessionSummary,
  events: readonly RecordedEvent[],
  calls: readonly RecordedToolCall[],
): string {
  const out: string[] = [];
  out.push(`# Session ${session.id}`, '');
  out.push('| | |', '| --- | --- |');
  out.push(`| identity | ${mdCell(session.identity)} (${session.authMethod}) |`);
  out.push(`| groups | ${mdCell(session.groups.join(', ') || '-')} |`);
  out.push(`| client | ${mdCell(`${session.clientName ?? '-'} ${session.clientVersion ?? ''}`.trim())} |`);
  out.push(`| era | ${session.era} (${session.protocolVersion}) |`);
  out.push(`| transport | ${session.frontTransport} |`);
  out.push(`| started | ${session.startedAt} |`);
  out.push(
    `| ended | ${session.endedAt === null ? 'still open' : `${session.endedAt} (${session.endReason ?? 'ended'})`} |`,
  );
  out.push(`| events | ${events.length}${session.headHash === null ? '' : `, head hash \`${session.headHash}\``} |`);
  if (session.replayOf !== null) out.push(`| replay of | ${session.replayOf} |`);
  out.push('', `## Tool calls (${calls.length})`, '');
  out.push('| # | time | tool | arguments | decision | rule | approval | outcome | duration | redactions |');
  out.push('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
  const start = Date.parse(session.startedAt);
  calls.forEach((call, i) => {
    const outcome =
      call.outcome === null ? 'pending' : call.outcome === 'rpc_error' ? `rpc_error ${call.errorCode}` : call.outcome;
    const redactions = summarizeRedaction(call.redaction);
    out.push(
      `| ${i + 1} | ${offset(call.requestedAt, start)} | \`${mdCell(call.namespacedTool)}\` | \`${mdCell(clip(JSON.stringify(call.arguments), 80))}\` | ${call.decision}${call.forwarded ? '' : ' (not forwarded)'} | ${mdCell(call.decisionRule ?? '-')} | ${mdCell(call.approvalRef ?? '-')} | ${outcome} | ${call.durationMs === null ? '-' : `${call.durationMs.toFixed(1)} ms`} | ${mdCell(redactions || '-')} |`,
    );
  });
  out.push('', '## Timeline', '', '```');
  const timeline = new Timeline(session.startedAt, calls, styleFor(false));
  for (const event of events) out.push(timeline.line(event));
  out.push('```', '');
  return out.join('\n');
}
