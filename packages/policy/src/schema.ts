import { RedactionRulesSchema } from '@portcullis/redact';
import { z } from 'zod';

/**
 * The policy document: YAML validated by `PolicySchema` (the source of truth for the format; see
 * docs/policy.md). Types are inferred from the schema.
 */

/** A glob (`*` any run of characters, `?` one character) or a list of them (any may match). */
const globs = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

/** `250ms`, `30s`, `10m`, `2h`, `1d`. */
export const DURATION_PATTERN = /^(\d+)(ms|s|m|h|d)$/;
const duration = z.string().regex(DURATION_PATTERN, 'a duration like 30s, 10m, 2h or 1d');

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** Milliseconds of a duration matching `DURATION_PATTERN`. */
export function durationMs(text: string): number {
  const match = DURATION_PATTERN.exec(text);
  if (!match) throw new Error(`not a duration: ${text}`);
  return Number(match[1]) * (UNIT_MS[match[2] ?? 'ms'] ?? 1);
}

export const ACTIONS = ['allow', 'deny', 'approve', 'confirm', 'hide'] as const;
export type PolicyAction = (typeof ACTIONS)[number];

export const MatchSchema = z
  .object({
    /** The upstream's configured name. */
    upstream: globs.optional(),
    /** Tool name: matched against the upstream's own name and the namespaced one. Restricts the rule to `tools/call`. */
    tool: globs.optional(),
    /** Prompt name (both names, like `tool`). Restricts the rule to `prompts/get`. */
    prompt: globs.optional(),
    /** Resource URI (the upstream's own URI and the gateway's). Restricts the rule to `resources/read`. */
    resource: globs.optional(),
    /** The caller's subject. */
    subject: globs.optional(),
    /** The caller's groups: the rule matches when any group matches any pattern. */
    groups: globs.optional(),
  })
  .strict();

export const ReviewersSchema = z
  .object({
    groups: z.array(z.string().min(1)).default([]),
    subjects: z.array(z.string().min(1)).default([]),
  })
  .strict()
  .refine((r) => r.groups.length + r.subjects.length > 0, 'name at least one reviewer group or subject');

export const ApproveSchema = z
  .object({
    reviewers: ReviewersSchema,
    /** How many distinct reviewers must approve. */
    count: z.number().int().min(1).default(1),
    timeout: duration.default('10m'),
    /** What happens when nobody decided in time. */
    onTimeout: z.enum(['deny', 'allow']).default('deny'),
    /** `wait`: the request stays open; `retry`: answered at once, the identical call goes through once approved. */
    mode: z.enum(['wait', 'retry']).default('wait'),
    /** Optional JSON POST (Slack-compatible `text`) when a call is held and when it is decided. */
    webhook: z.url().optional(),
  })
  .strict();

export const ConfirmSchema = z
  .object({
    /** The question put to the agent's user; `{name}` and `{args}` are filled in. */
    message: z.string().min(1).optional(),
    /** When the agent cannot ask its user (no elicitation capability). */
    otherwise: z.enum(['approve', 'deny']).default('deny'),
  })
  .strict();

/** The action fields shared by rules and the default. */
const actionFields = {
  action: z.enum(ACTIONS),
  /** For `deny` (and a `confirm` the user declines): the reason the agent sees. */
  reason: z.string().min(1).optional(),
  approve: ApproveSchema.optional(),
  confirm: ConfirmSchema.optional(),
};

type ActionFields = {
  action: PolicyAction;
  reason?: string | undefined;
  approve?: unknown;
  confirm?: { otherwise: 'approve' | 'deny' } | undefined;
};

function checkActionFields(value: ActionFields, ctx: z.RefinementCtx): void {
  if (value.reason !== undefined && value.action !== 'deny' && value.action !== 'confirm') {
    ctx.addIssue({ code: 'custom', path: ['reason'], message: `"reason" applies to deny (and confirm) only` });
  }
  const needsApprove =
    value.action === 'approve' || (value.action === 'confirm' && value.confirm?.otherwise === 'approve');
  if (needsApprove && value.approve === undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['approve'],
      message:
        value.action === 'approve'
          ? 'action "approve" needs an "approve" block naming the reviewers'
          : 'confirm with otherwise: approve needs an "approve" block naming the reviewers',
    });
  }
  if (!needsApprove && value.approve !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['approve'],
      message: `"approve" does not apply to action "${value.action}"`,
    });
  }
  if (value.action !== 'confirm' && value.confirm !== undefined) {
    ctx.addIssue({
      code: 'custom',
      path: ['confirm'],
      message: `"confirm" does not apply to action "${value.action}"`,
    });
  }
}

export const RuleSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, 'a rule name: letters, digits, "_", ".", ":", "-"'),
    description: z.string().optional(),
    /** `enforce` (default) decides; `audit` is a shadow rule: its decision is recorded, not enforced. */
    mode: z.enum(['enforce', 'audit']).default('enforce'),
    match: MatchSchema.default({}),
    /** CEL condition over identity, upstream, tool, kind, name, uri, args and now; must be a bool. */
    when: z.string().min(1).optional(),
    ...actionFields,
  })
  .strict()
  .superRefine((rule, ctx) => {
    checkActionFields(rule, ctx);
    if ((rule.action === 'approve' || rule.action === 'confirm') && (rule.match.prompt || rule.match.resource)) {
      ctx.addIssue({
        code: 'custom',
        path: ['action'],
        message: `action "${rule.action}" applies to tool calls only, not to prompts or resources`,
      });
    }
  });

export const DefaultSchema = z
  .object(actionFields)
  .strict()
  .superRefine((value, ctx) => checkActionFields(value, ctx));

export const PolicySchema = z
  .object({
    /** Format version of the document. */
    version: z.literal(1).default(1),
    description: z.string().optional(),
    /** The decision when no enforced rule matches. */
    default: DefaultSchema.default({ action: 'deny' }),
    rules: z.array(RuleSchema).default([]),
    /** Redaction rules (`RedactionRulesSchema` of `@portcullis/redact`): validated here, compiled with the policy. */
    redact: RedactionRulesSchema.optional(),
  })
  .strict()
  .superRefine((policy, ctx) => {
    const seen = new Map<string, number>();
    policy.rules.forEach((rule, index) => {
      const first = seen.get(rule.name);
      if (first !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['rules', index, 'name'],
          message: `duplicate rule name "${rule.name}" (first used by rules[${first}])`,
        });
      } else seen.set(rule.name, index);
    });
  });

export type PolicyDocument = z.output<typeof PolicySchema>;
export type PolicyRule = z.output<typeof RuleSchema>;
export type PolicyMatch = z.output<typeof MatchSchema>;
export type ApproveSpec = z.output<typeof ApproveSchema>;
export type ConfirmSpec = z.output<typeof ConfirmSchema>;
export type DefaultAction = z.output<typeof DefaultSchema>;
