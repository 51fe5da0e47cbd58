import { JsonRpcError, type RequestContext, RpcCode, type RpcParams, type Stage } from '@portcullis/core';
import type { Decision } from '../evaluate.js';
import { DECISION_ANNOTATION, denial, HOLD_RELEASED_ANNOTATION } from '../stage.js';
import { argumentsHash } from './stage.js';

/** `ctx.annotations` key under which the confirm stage leaves the user's answer (`ConfirmationRecord`). */
export const CONFIRMATION_ANNOTATION = 'portcullis.policy.confirmation';
/** The key of the confirmation in a 2026-era `input_required` result's `inputRequests`. */
export const CONFIRM_INPUT_KEY = 'portcullis_confirm';

/** What the user answered: `accepted` (true), `declined` (decline, or false), `cancelled`. */
export type ConfirmAnswer = 'accepted' | 'declined' | 'cancelled';

/** What the decision records of a confirmation: the answer, never any other content of the user's reply. */
export interface ConfirmationRecord {
  /** `asked`: a 2026-era round went out, the answer comes with the retry; `failed`: no usable answer. */
  readonly answer: ConfirmAnswer | 'asked' | 'unavailable' | 'failed';
  readonly era: 'legacy' | 'modern';
}

/** What a 2026-era confirmation's `requestState` binds: the identical call of the same caller. */
export interface ConfirmState {
  readonly subject: string;
  readonly tool: string;
  readonly argsHash: string;
}

/** Seals and opens the confirmation's `requestState` (the gateway's HMAC codec, `createSealedState`). */
export interface ConfirmStateCodec {
  owns(state: unknown): state is string;
  mint(payload: ConfirmState): Promise<string>;
  open(state: string): Promise<ConfirmState>;
}

export interface ConfirmStageOptions {
  /** Seals the 2026-era `requestState`. Without it 2026-era agents cannot confirm (the rule's `otherwise` applies). */
  readonly state?: ConfirmStateCodec;
  /** Records the user's answer in the session log (failures are reported to `onError`, never fatal). */
  readonly event?: (ctx: RequestContext, answer: ConfirmAnswer, details: Record<string, unknown>) => Promise<void>;
  readonly onError?: (error: unknown, what: string) => void;
}

const MAX_VALUE_CHARS = 60;
const MAX_ARGS_CHARS = 240;

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function clip(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

/** `path="/tmp/x", recursive=true`: the arguments in call order, each value and the whole clipped. */
export function summarizeArguments(args: Readonly<Record<string, unknown>>): string {
  const parts: string[] = [];
  for (const [key, value] of Object.entries(args)) {
    if (value === undefined) continue;
    let shown: string;
    try {
      shown = JSON.stringify(value) ?? String(value);
    } catch {
      shown = '…';
    }
    parts.push(`${key}=${clip(shown, MAX_VALUE_CHARS)}`);
  }
  return clip(parts.join(', '), MAX_ARGS_CHARS);
}

/** The question put to the user: the rule's `message` (`{name}`, `{args}` filled in) or "allow NAME with ARGS?". */
export function confirmMessage(decision: Decision, tool: string, args: Readonly<Record<string, unknown>>): string {
  const summary = summarizeArguments(args);
  const template = decision.confirm?.message;
  if (template !== undefined) return template.replaceAll('{name}', tool).replaceAll('{args}', summary);
  return summary === '' ? `allow ${tool}?` : `allow ${tool} with ${summary}?`;
}

/** The form elicitation asking for the confirmation (a single required boolean). */
export function confirmElicitation(message: string): RpcParams {
  return {
    message,
    requestedSchema: {
      type: 'object',
      properties: {
        confirm: { type: 'boolean', title: 'Allow this call', default: false },
      },
      required: ['confirm'],
    },
  };
}

/** Whether the agent can answer a form elicitation (`elicitation: {}` means form, as the spec says). */
export function elicitsForm(capabilities: Readonly<Record<string, unknown>>): boolean {
  const declared = capabilities.elicitation;
  if (!isRecord(declared)) return false;
  return Object.keys(declared).length === 0 || declared.form !== undefined;
}

/** The answer in an elicitation result; `undefined` when it is not one. */
export function readAnswer(result: unknown): ConfirmAnswer | undefined {
  if (!isRecord(result)) return undefined;
  switch (result.action) {
    case 'accept':
      return isRecord(result.content) && result.content.confirm === true ? 'accepted' : 'declined';
    case 'decline':
      return 'declined';
    case 'cancel':
      return 'cancelled';
    default:
      return undefined;
  }
}

/**
 * The `confirm` stage (slot `hold`, before the hold stage). A `tools/call` the authorize stage
 * decided `confirm` asks the agent's own user through a form elicitation:
 * - 2025 era: an `elicitation/create` request related to the call;
 * - 2026 era: an `input_required` result carrying it, with a sealed `requestState` binding the
 *   caller, the tool and the arguments hash; the agent's retry must be the identical call.
 * Accepted (true) → released to the next stage and forwarded; declined, cancelled or false → a tool
 * error saying the user declined. Agents that declared no (form) elicitation get the rule's
 * `otherwise`: `approve` → the hold stage holds the call; `deny` → denied, confirmation impossible.
 * The answer (only the answer) is added to the decision in `ctx.annotations`. Any error denies.
 */
export function createConfirmStage(options: ConfirmStageOptions = {}): Stage {
  const onError = options.onError ?? (() => undefined);
  const record = (ctx: RequestContext, decision: Decision, confirmation: ConfirmationRecord) => {
    ctx.annotations.set(CONFIRMATION_ANNOTATION, confirmation);
    ctx.annotations.set(DECISION_ANNOTATION, Object.freeze({ ...decision, confirmation }));
  };
  const event = async (ctx: RequestContext, answer: ConfirmAnswer, details: Record<string, unknown>) => {
    if (options.event === undefined) return;
    try {
      await options.event(ctx, answer, details);
    } catch (error) {
      onError(error, 'confirmation event');
    }
  };

  return {
    name: 'hold',
    handle: async (ctx, next) => {
      const decision = ctx.annotations.get(DECISION_ANNOTATION) as Decision | undefined;
      const state = options.state;
      const carriesState = state?.owns(ctx.params.requestState) === true;
      if (decision?.decision !== 'confirm' || ctx.method !== 'tools/call' || ctx.target === undefined) {
        // A confirmation retry for a call that no longer needs one: the state is the gateway's, never the upstream's.
        if (carriesState) stripRetry(ctx.params);
        return next();
      }
      const era = ctx.session.era;
      const by = decision.rule === null ? 'the default action' : `policy rule "${decision.rule}"`;
      const tool = ctx.target.namespacedName;
      // The retry's own keys are not arguments of the call.
      const retry = carriesState ? stripRetry(ctx.params) : undefined;
      const args = isRecord(ctx.params.arguments) ? ctx.params.arguments : {};
      const argsHash = argumentsHash(args);

      const canAsk = elicitsForm(ctx.agent.capabilities) && (era === 'legacy' || state !== undefined);
      if (!canAsk) {
        record(ctx, decision, { answer: 'unavailable', era });
        if (decision.confirm?.otherwise === 'approve') return next(); // the hold stage holds it
        return denial(
          ctx.method,
          `denied: ${by} requires the user's confirmation, and confirmation is impossible: the agent did not declare the elicitation capability (form mode)`,
        );
      }

      const message = confirmMessage(decision, tool, args);
      let answer: ConfirmAnswer | undefined;
      try {
        if (era === 'legacy') {
          answer = readAnswer(
            await ctx.agent.request('elicitation/create', confirmElicitation(message), { signal: ctx.signal }),
          );
        } else if (state !== undefined) {
          if (retry === undefined) {
            const requestState = await state.mint({ subject: ctx.identity.subject, tool, argsHash });
            record(ctx, decision, { answer: 'asked', era });
            return {
              resultType: 'input_required',
              inputRequests: {
                [CONFIRM_INPUT_KEY]: {
                  method: 'elicitation/create',
                  params: { mode: 'form', ...confirmElicitation(message) },
                },
              },
              requestState,
            };
          }
          let bound: ConfirmState;
          try {
            bound = await state.open(retry.requestState);
          } catch {
            throw new JsonRpcError(RpcCode.InvalidParams, 'Invalid or expired requestState');
          }
          if (bound.subject !== ctx.identity.subject || bound.tool !== tool || bound.argsHash !== argsHash) {
            throw new JsonRpcError(
              RpcCode.InvalidParams,
              'Invalid requestState: the confirmation was issued for another call (the retry must repeat the identical call)',
            );
          }
          const responses = isRecord(retry.inputResponses) ? retry.inputResponses : {};
          answer = readAnswer(responses[CONFIRM_INPUT_KEY]);
        }
      } catch (error) {
        if (error instanceof JsonRpcError) {
          record(ctx, decision, { answer: 'failed', era });
          throw error;
        }
        onError(error, 'confirmation');
        record(ctx, decision, { answer: 'failed', era });
        return denial(ctx.method, `denied: ${by} requires the user's confirmation, and asking for it failed`);
      }
      if (answer === undefined) {
        record(ctx, decision, { answer: 'failed', era });
        return denial(ctx.method, `denied: ${by} requires the user's confirmation, and the agent gave no valid answer`);
      }
      record(ctx, decision, { answer, era });
      await event(ctx, answer, { rule: decision.rule, tool, argsHash, era });
      if (answer !== 'accepted') {
        return denial(
          ctx.method,
          `denied: the user ${answer === 'cancelled' ? 'cancelled' : 'declined'} the confirmation of ${tool} (${by})`,
        );
      }
      ctx.annotations.set(HOLD_RELEASED_ANNOTATION, true);
      return next();
    },
  };
}

/** Takes a confirmation retry's `requestState` and `inputResponses` out of the params (they never reach the upstream). */
function stripRetry(params: RpcParams): { requestState: string; inputResponses: unknown } {
  const requestState = typeof params.requestState === 'string' ? params.requestState : '';
  const inputResponses = params.inputResponses;
  Reflect.deleteProperty(params, 'requestState');
  Reflect.deleteProperty(params, 'inputResponses');
  return { requestState, inputResponses };
}
