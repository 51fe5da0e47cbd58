import { userInfo } from 'node:os';
import { type Config, type UpstreamSpec, upstreamSpecs } from '@portcullis/config';
import { configuredIdentity, describeError, type Identity, JsonRpcError, RpcCode } from '@portcullis/core';
import {
  type CompiledPolicy,
  type Decision,
  evaluate,
  FilePolicySource,
  failedDecision,
  PolicyError,
  type PolicyRequest,
  type TargetKind,
} from '@portcullis/policy';
import {
  getSession,
  linkReplay,
  type RecordedEvent,
  type RecordedToolCall,
  type SessionSummary,
  type Store,
  sessionEvents,
  sessionKnown,
  sessionToolCalls,
  uuidv7,
} from '@portcullis/store';
import { createUpstreamConnection, type UpstreamConnection } from '@portcullis/upstream';
import { type Command, InvalidArgumentError } from 'commander';
import { pino } from 'pino';
import { VERSION } from '../cli.js';
import { describeStore, loadConfigForCommand, openStoreForCommand, storeOptionsFor } from '../session-log.js';
import { confirm, progressBar } from '../terminal.js';
import { diffJson, formatChanges, type JsonChange } from './json-diff.js';
import { resolveName, resolveResource } from './policy.js';
import {
  colourWanted,
  headerLines,
  jsonlRecord,
  markdownReport,
  styleFor,
  Timeline,
  targetOf,
} from './replay-render.js';

/**
 * Exit codes of `portcullis replay` (see README): 0 done (what-if: no decision changes; execute:
 * every result as recorded), 1 runtime failure, 2 bad usage (unknown or non-sandbox upstream,
 * invalid policy, no confirmation), 3 unknown session, 4 what-if: some decision would change /
 * execute: some result differs.
 */
export const ReplayExit = { Ok: 0, Failure: 1, BadInput: 2, UnknownSession: 3, Differs: 4 } as const;

type ReplayFormat = 'text' | 'jsonl' | 'md' | 'json';

function parseFormat(value: string): ReplayFormat {
  if (value === 'text' || value === 'jsonl' || value === 'md' || value === 'json') return value;
  throw new InvalidArgumentError('a format is "text", "jsonl", "md" or "json"');
}

function parseInterval(value: string): number {
  const ms = Number(value);
  if (!Number.isInteger(ms) || ms < 50) throw new InvalidArgumentError('milliseconds, at least 50');
  return ms;
}

interface ReplayOptions {
  readonly config: string;
  readonly format: ReplayFormat;
  readonly output?: 'text' | 'json';
  readonly follow?: boolean;
  readonly interval: number;
  readonly policy?: string;
  readonly execute?: boolean;
  readonly upstream?: string;
  readonly yes?: boolean;
  readonly force?: boolean;
}

class ExitError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** `portcullis replay SESSION`: timeline, exports, what-if against another policy, re-run against a sandbox. */
export function registerReplayCommands(program: Command): void {
  program
    .command('replay')
    .description(
      'show a recorded session as a timeline (--format text|jsonl|md|json, --follow), re-evaluate it against another policy (--policy), or re-run its tool calls against a sandbox upstream (--execute)',
    )
    .argument('<session>', 'session id (see `portcullis sessions list`)')
    .requiredOption('-c, --config <file>', 'configuration file (YAML or JSON)')
    .option(
      '--format <format>',
      'text (timeline), jsonl (the recorded messages with hashes), md (report), json',
      parseFormat,
      'text' as ReplayFormat,
    )
    .option('--output <format>', 'text or json (same as --format json)')
    .option('--follow', 'keep printing new events of a live session until it ends (Ctrl-C stops)')
    .option('--interval <ms>', 'how often --follow polls the store', parseInterval, 500)
    .option(
      '--policy <file>',
      'what-if: re-evaluate every recorded call against this policy; exit 4 if a decision changes',
    )
    .option(
      '--execute',
      're-run the recorded tool calls against --upstream (a sandbox) and diff the results; exit 4 if one differs',
    )
    .option('--upstream <name>', 'the configured upstream --execute runs against (must have `sandbox: true`)')
    .option('--yes', '--execute without asking for confirmation')
    .option('--force', '--execute against an upstream not marked as a sandbox')
    .action(async (sessionId: string, options: ReplayOptions) => {
      const format: ReplayFormat = options.output === 'json' ? 'json' : options.format;
      if (options.output !== undefined && options.output !== 'json' && options.output !== 'text') {
        fail(ReplayExit.BadInput, 'an output format is "text" or "json"');
      }
      if (options.execute === true && options.policy !== undefined)
        fail(ReplayExit.BadInput, '--execute and --policy are separate runs');
      if (options.execute === true && options.upstream === undefined)
        fail(ReplayExit.BadInput, '--execute needs --upstream NAME');
      if (options.follow === true && (format === 'md' || format === 'json')) {
        fail(ReplayExit.BadInput, '--follow prints the text timeline or jsonl');
      }
      const config = await loadConfigForCommand(options.config);
      const where = describeStore(storeOptionsFor(config));
      // Checked before the store opens: usage errors come first and cheaply.
      const sandbox = options.execute === true ? sandboxSpec(config, options) : undefined;
      const policy = options.policy !== undefined ? await loadPolicyOrExit(options.policy) : undefined;
      const store = await openStoreForCommand(config, { migrate: options.execute === true });
      try {
        if (!(await sessionKnown(store.db, sessionId))) {
          throw new ExitError(ReplayExit.UnknownSession, `no session ${sessionId} in the session log (${where})`);
        }
        const session = (await getSession(store.db, sessionId)) ?? placeholderSession(sessionId);
        if (policy !== undefined) {
          process.exitCode = await whatIf(store, session, policy, options.policy ?? '', config, format);
        } else if (sandbox !== undefined) {
          process.exitCode = await execute(store, session, sandbox, options, format);
        } else if (options.follow === true) {
          await follow(store, session, format, options.interval);
        } else {
          await show(store, session, format);
        }
      } catch (error) {
        if (error instanceof ExitError) {
          process.stderr.write(`portcullis: ${error.message}\n`);
          process.exitCode = error.exitCode;
        } else {
          process.stderr.write(`portcullis: replay failed (${where}): ${describeError(error)}\n`);
          process.exitCode = ReplayExit.Failure;
        }
      } finally {
        await store.close();
      }
    });
}

function fail(code: number, message: string): never {
  process.stderr.write(`portcullis: ${message}\n`);
  process.exit(code);
}

async function loadPolicyOrExit(file: string): Promise<CompiledPolicy> {
  try {
    return await new FilePolicySource(file).load();
  } catch (error) {
    if (error instanceof PolicyError) fail(ReplayExit.BadInput, `invalid policy\n${error.message}`);
    fail(ReplayExit.BadInput, `cannot read policy ${file}: ${describeError(error)}`);
  }
}

/** A session known only by its events (its start row still in a gateway's spool). */
function placeholderSession(id: string): SessionSummary {
  return {
    id,
    gatewayInstance: '',
    identity: 'unknown',
    groups: [],
    authMethod: 'unknown',
    clientName: null,
    clientVersion: null,
    era: 'unknown',
    protocolVersion: '',
    frontTransport: 'unknown',
    remoteAddress: null,
    startedAt: new Date(0).toISOString(),
    endedAt: null,
    endReason: null,
    eventCount: null,
    headHash: null,
    replayOf: null,
    toolCalls: 0,
    denied: 0,
    upstreams: [],
  };
}

// ---------------------------------------------------------------- show, follow

/** Every recorded event of a session, in sequence order (read in pages: none is left out). */
async function allEvents(store: Store, sessionId: string): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  for (;;) {
    const page = await sessionEvents(store.db, sessionId, { afterSeq: events.at(-1)?.seq ?? 0, limit: EVENT_PAGE });
    events.push(...page);
    if (page.length < EVENT_PAGE) return events;
  }
}

const EVENT_PAGE = 10_000;

/** When the session started: its row's time, or for a session known only by its events, the first one's. */
function startOf(session: SessionSummary, firstEvent: RecordedEvent | undefined): string {
  return session.startedAt === new Date(0).toISOString()
    ? (firstEvent?.occurredAt ?? session.startedAt)
    : session.startedAt;
}

async function show(store: Store, session: SessionSummary, format: ReplayFormat): Promise<void> {
  const events = await allEvents(store, session.id);
  const calls = await sessionToolCalls(store.db, session.id);
  const startedAt = startOf(session, events[0]);
  if (format === 'jsonl') {
    const lines = events.map((event) => jsonlRecord(session.id, event));
    process.stdout.write(lines.length === 0 ? '' : `${lines.join('\n')}\n`);
  } else if (format === 'md') {
    process.stdout.write(markdownReport({ ...session, startedAt }, events, calls));
  } else if (format === 'json') {
    process.stdout.write(`${JSON.stringify({ session, events, toolCalls: calls })}\n`);
  } else {
    const style = styleFor(colourWanted(process.stdout));
    const timeline = new Timeline(startedAt, calls, style);
    const lines = headerLines(session).map((line) => style.dim(line));
    lines.push('');
    for (const event of events) lines.push(timeline.line(event));
    const denied = calls.filter((call) => call.decision === 'deny' || call.decision === 'hide').length;
    lines.push('', style.dim(`${events.length} event(s), ${calls.length} tool call(s), ${denied} denied or hidden`));
    process.stdout.write(`${lines.join('\n')}\n`);
  }
}

async function follow(store: Store, initial: SessionSummary, format: ReplayFormat, intervalMs: number): Promise<void> {
  let stopped = false;
  const onSignal = () => {
    stopped = true;
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const style = styleFor(format === 'text' && colourWanted(process.stdout));
    let session = initial;
    const [first] = await sessionEvents(store.db, session.id, { limit: 1 });
    const timeline = new Timeline(startOf(session, first), await sessionToolCalls(store.db, session.id), style);
    if (format === 'text')
      process.stdout.write(
        `${headerLines(session)
          .map((line) => style.dim(line))
          .join('\n')}\n\n`,
      );
    let lastSeq = 0;
    let removed = false;
    // Ctrl-C is honoured between polls even while events keep arriving.
    while (!stopped) {
      const events = await sessionEvents(store.db, session.id, { afterSeq: lastSeq });
      if (events.length > 0) {
        timeline.addCalls(await sessionToolCalls(store.db, session.id));
        const lines = events.map((event) =>
          format === 'jsonl' ? jsonlRecord(session.id, event) : timeline.line(event),
        );
        process.stdout.write(`${lines.join('\n')}\n`);
        lastSeq = events[events.length - 1]?.seq ?? lastSeq;
        continue;
      }
      if (session.endedAt !== null && (session.eventCount === null || lastSeq >= session.eventCount)) break;
      await new Promise((done) => setTimeout(done, intervalMs));
      if (stopped) break;
      const current = await getSession(store.db, session.id);
      // A session that had a row and has none now was pruned: nothing more will come.
      if (current === undefined && initial.startedAt !== new Date(0).toISOString()) {
        removed = true;
        break;
      }
      session = current ?? session;
    }
    if (format === 'text') {
      const state = removed
        ? 'session removed from the session log (pruned)'
        : session.endedAt === null
          ? 'stopped following (session still open)'
          : `session ended (${session.endReason ?? 'ended'})`;
      process.stdout.write(`\n${style.dim(state)}\n`);
    }
    if (removed) {
      process.stderr.write(`portcullis: session ${session.id} was removed from the session log while followed\n`);
      process.exitCode = ReplayExit.UnknownSession;
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

// ---------------------------------------------------------------- what-if

const KIND_OF: Readonly<Record<string, TargetKind>> = {
  'tools/call': 'tool',
  'resources/read': 'resource',
  'prompts/get': 'prompt',
};

interface WhatIfRow {
  readonly seq: number;
  readonly method: string;
  readonly target: string;
  readonly upstream: string;
  readonly old: { readonly decision: string; readonly rule: string | null };
  readonly new: { readonly decision: string; readonly rule: string | null; readonly reason: string | null };
  readonly changed: boolean;
}

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The decision a recorded prompt or resource request got, read from its response (they have no tool-call row). */
function decisionFromResponse(response: RecordedEvent | undefined): { decision: string; rule: string | null } {
  const payload = response?.payload;
  if (isRecord(payload) && isRecord(payload.error)) {
    if (payload.error.code === RpcCode.PolicyDenied) return { decision: 'deny', rule: null };
    if (payload.error.code === RpcCode.InvalidParams && /unknown/i.test(String(payload.error.message))) {
      return { decision: 'hide', rule: null };
    }
  }
  return { decision: 'allow', rule: null };
}

async function whatIf(
  store: Store,
  session: SessionSummary,
  policy: CompiledPolicy,
  policyFile: string,
  config: Config,
  format: ReplayFormat,
): Promise<number> {
  const events = await allEvents(store, session.id);
  const calls = await sessionToolCalls(store.db, session.id);
  const bySeq = new Map<number, RecordedToolCall>();
  for (const call of calls) if (call.requestSeq !== null) bySeq.set(call.requestSeq, call);
  const responses = new Map<string, RecordedEvent>();
  for (const event of events) if (event.kind === 'response' && event.rpcId !== null) responses.set(event.rpcId, event);

  const rows: WhatIfRow[] = [];
  const skipped: { seq: number; method: string; target: string; reason: string }[] = [];
  for (const event of events) {
    const kind = event.method === null ? undefined : KIND_OF[event.method];
    if (event.kind !== 'request' || kind === undefined || event.method === null) continue;
    const target = targetOf(event.payload) ?? '';
    const call = bySeq.get(event.seq);
    let request: PolicyRequest;
    let old: { decision: string; rule: string | null };
    const at = new Date(event.occurredAt);
    if (call !== undefined) {
      if (call.upstream === null) {
        skipped.push({ seq: event.seq, method: event.method, target, reason: 'routed to no upstream' });
        continue;
      }
      const identity: Identity = { subject: call.identity, groups: call.groups, authMethod: 'config', claims: {} };
      request = {
        kind,
        identity,
        upstream: call.upstream,
        name: call.tool,
        namespacedName: call.namespacedTool,
        args: isRecord(call.arguments) ? call.arguments : {},
        now: at,
      };
      old = { decision: call.decision, rule: call.decisionRule };
    } else {
      let resolved: { upstream: string; name: string; namespacedName: string };
      try {
        resolved =
          kind === 'resource'
            ? resolveResource(config, target, event.upstream ?? undefined)
            : resolveName(config, target, event.upstream ?? undefined);
      } catch (error) {
        skipped.push({ seq: event.seq, method: event.method, target, reason: describeError(error) });
        continue;
      }
      const params = isRecord(event.payload) && isRecord(event.payload.params) ? event.payload.params : {};
      request = {
        kind,
        identity: { subject: session.identity, groups: session.groups, authMethod: 'config', claims: {} },
        ...resolved,
        args: isRecord(params.arguments) ? params.arguments : {},
        now: at,
      };
      old = decisionFromResponse(event.rpcId === null ? undefined : responses.get(event.rpcId));
    }
    let decision: Decision;
    try {
      decision = evaluate(policy, request);
    } catch (error) {
      decision = failedDecision(policy, request, error);
    }
    rows.push({
      seq: event.seq,
      method: event.method,
      target,
      upstream: request.upstream,
      old,
      new: { decision: decision.decision, rule: decision.rule, reason: decision.reason },
      changed: decision.decision !== old.decision,
    });
  }
  const changed = rows.filter((row) => row.changed);
  if (format === 'json') {
    process.stdout.write(
      `${JSON.stringify({ session: session.id, policy: policyFile, policyVersion: policy.version, evaluated: rows.length, changed, unchanged: rows.length - changed.length, skipped })}\n`,
    );
  } else {
    const style = styleFor(colourWanted(process.stdout));
    const lines: string[] = [];
    const decisionText = (d: { decision: string; rule: string | null }) =>
      `${d.decision}${d.rule === null ? '' : ` (${d.rule})`}`;
    for (const row of changed) {
      lines.push(
        `#${row.seq}  ${row.method}  ${style.cyan(row.target)}  ${decisionText(row.old)} → ${style.bold(decisionText(row.new))}`,
      );
    }
    for (const skip of skipped)
      lines.push(style.dim(`#${skip.seq}  ${skip.method}  ${skip.target}  not evaluated: ${skip.reason}`));
    lines.push(
      `${changed.length} of ${rows.length} recorded call(s) would be decided differently under ${policyFile}${changed.length === 0 ? '' : ` (exit ${ReplayExit.Differs})`}`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return changed.length > 0 ? ReplayExit.Differs : ReplayExit.Ok;
}

// ---------------------------------------------------------------- execute

function sandboxSpec(config: Config, options: ReplayOptions): UpstreamSpec {
  const name = options.upstream ?? '';
  const spec = upstreamSpecs(config).find((candidate) => candidate.name === name);
  if (spec === undefined) {
    const known = upstreamSpecs(config).map((candidate) => candidate.name);
    fail(ReplayExit.BadInput, `no upstream "${name}" in the configuration (configured: ${known.join(', ') || 'none'})`);
  }
  if (spec.sandbox !== true && options.force !== true) {
    fail(
      ReplayExit.BadInput,
      `upstream "${name}" is not marked as a sandbox (sandbox: true in its configuration); re-running recorded calls against it could change real systems. Pass --force to do it anyway.`,
    );
  }
  return spec;
}

interface ExecutedCall {
  readonly index: number;
  readonly originalSeq: number | null;
  readonly tool: string;
  readonly arguments: unknown;
  readonly status: 'same' | 'differs' | 'failed';
  readonly recorded: unknown;
  readonly replayed: unknown;
  readonly changes: readonly JsonChange[];
  readonly durationMs: number;
}

/** What the agent received, as stored: the result, or `{ error: { code, message } }`. */
function recordedOutcome(call: RecordedToolCall): unknown {
  if (call.outcome === 'rpc_error') return { error: { code: call.errorCode, message: call.errorMessage } };
  return call.result;
}

async function execute(
  store: Store,
  original: SessionSummary,
  spec: UpstreamSpec,
  options: ReplayOptions,
  format: ReplayFormat,
): Promise<number> {
  const calls = (await sessionToolCalls(store.db, original.id)).filter((call) => call.forwarded);
  if (options.yes !== true) {
    if (process.stdin.isTTY !== true || process.stderr.isTTY !== true) {
      throw new ExitError(
        ReplayExit.BadInput,
        'replay --execute asks for confirmation on a terminal: pass --yes to run it here',
      );
    }
    const ok = await confirm(
      `Re-run ${calls.length} recorded tool call(s) of session ${original.id} against upstream "${spec.name}"${spec.sandbox ? ' (sandbox)' : ' (NOT a sandbox)'}? [y/N] `,
    );
    if (!ok) throw new ExitError(ReplayExit.BadInput, 'not confirmed; nothing was run');
  }

  const logger = pino({ level: 'silent' });
  const connection: UpstreamConnection = createUpstreamConnection(spec, {
    logger,
    clientInfo: { name: 'portcullis-replay', version: VERSION },
  });
  const replayId = uuidv7();
  const identity = configuredIdentity(`replay:${safeUser()}`, []);
  const results: ExecutedCall[] = [];
  const bar = progressBar(calls.length);
  try {
    await connection.ready();
    await store.recordSessionStart(
      {
        id: replayId,
        era: connection.era ?? 'legacy',
        protocolVersion: connection.protocolVersion ?? '',
        frontTransport: 'stdio',
        clientInfo: { name: 'portcullis replay', version: VERSION },
        remoteAddress: undefined,
      },
      identity,
    );
    for (const [i, call] of calls.entries()) {
      bar.tick(i, call.namespacedTool);
      const rpcId = i + 1;
      const params = { name: call.tool, arguments: isRecord(call.arguments) ? call.arguments : {} };
      const requestSeq = await store.recordEvent({
        sessionId: replayId,
        direction: 'from_agent',
        kind: 'request',
        method: 'tools/call',
        rpcId,
        upstream: spec.name,
        payload: { jsonrpc: '2.0', id: rpcId, method: 'tools/call', params },
      });
      const toolCallId = await store.recordToolCall({
        sessionId: replayId,
        rpcId,
        requestSeq,
        identity,
        upstream: spec.name,
        tool: call.tool,
        namespacedTool: call.namespacedTool,
        arguments: params.arguments,
        decision: 'allow',
        decisionRule: `replay of ${original.id}`,
      });
      const started = performance.now();
      let replayed: unknown;
      let failed = false;
      try {
        replayed = withoutHopMeta(await connection.request('tools/call', params));
      } catch (error) {
        failed = !(error instanceof JsonRpcError);
        replayed =
          error instanceof JsonRpcError
            ? { error: { code: error.code, message: error.message } }
            : { error: { message: describeError(error) } };
      }
      const durationMs = performance.now() - started;
      const isError = isRecord(replayed) && isRecord(replayed.error);
      await store.recordEvent({
        sessionId: replayId,
        direction: 'to_agent',
        kind: 'response',
        method: 'tools/call',
        rpcId,
        upstream: spec.name,
        payload: isError
          ? { jsonrpc: '2.0', id: rpcId, ...(replayed as object) }
          : { jsonrpc: '2.0', id: rpcId, result: replayed },
        latencyMs: durationMs,
      });
      const errorOf = isError && isRecord(replayed) && isRecord(replayed.error) ? replayed.error : undefined;
      await store.recordToolCallOutcome(toolCallId, {
        outcome:
          errorOf !== undefined
            ? {
                kind: 'rpc_error',
                code: typeof errorOf.code === 'number' ? errorOf.code : RpcCode.InternalError,
                message: String(errorOf.message ?? ''),
              }
            : { kind: 'result', result: replayed, isError: isRecord(replayed) && replayed.isError === true },
        durationMs,
      });
      const recorded = recordedOutcome(call);
      const changes = diffJson(recorded, replayed);
      results.push({
        index: rpcId,
        originalSeq: call.requestSeq,
        tool: call.namespacedTool,
        arguments: call.arguments,
        status: failed ? 'failed' : changes.length === 0 ? 'same' : 'differs',
        recorded,
        replayed,
        changes,
        durationMs,
      });
    }
    bar.tick(calls.length, 'done');
    bar.end();
    await store.recordSessionEnd(replayId, 'replay-complete');
    await store.flush();
    await linkReplay(store.db, replayId, original.id);
  } finally {
    bar.end();
    await connection.close().catch(() => undefined);
  }

  const differing = results.filter((result) => result.status !== 'same');
  if (format === 'json') {
    process.stdout.write(
      `${JSON.stringify({ session: original.id, replaySession: replayId, upstream: spec.name, sandbox: spec.sandbox === true, calls: results, same: results.length - differing.length, differs: differing.length })}\n`,
    );
  } else {
    const style = styleFor(colourWanted(process.stdout));
    const lines: string[] = [];
    for (const result of results) {
      const mark =
        result.status === 'same'
          ? style.green('same')
          : result.status === 'failed'
            ? style.red('FAILED')
            : style.yellow('DIFFERS');
      lines.push(
        `${String(result.index).padStart(3)}. ${style.cyan(result.tool)} ${style.dim(JSON.stringify(result.arguments))}  ${mark}  ${style.dim(`${result.durationMs.toFixed(1)} ms`)}`,
      );
      for (const change of formatChanges(result.changes)) {
        const coloured = change.startsWith('+')
          ? style.green(change)
          : change.startsWith('-')
            ? style.red(change)
            : style.yellow(change);
        lines.push(`       ${coloured}`);
      }
    }
    lines.push(
      '',
      `${results.length} call(s) re-run against ${spec.name}: ${results.length - differing.length} same, ${differing.length} differ`,
      `recorded as session ${replayId} (replay of ${original.id})`,
    );
    process.stdout.write(`${lines.join('\n')}\n`);
  }
  return differing.length > 0 ? ReplayExit.Differs : ReplayExit.Ok;
}

/**
 * The result as the gateway would hand it to an agent: without the 2026 envelope keys of the
 * upstream hop (`_meta` `io.modelcontextprotocol/…`), which the recorded result never has.
 */
function withoutHopMeta(result: unknown): unknown {
  if (!isRecord(result) || !isRecord(result._meta)) return result;
  const { _meta, ...rest } = result;
  const kept = Object.fromEntries(Object.entries(_meta).filter(([key]) => !key.startsWith('io.modelcontextprotocol/')));
  return Object.keys(kept).length > 0 ? { ...rest, _meta: kept } : rest;
}

function safeUser(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
