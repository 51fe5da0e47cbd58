import { isIPv6 } from 'node:net';
import { cardPrefixValid, ibanValid, luhnValid, shannonEntropy, ssnValid } from './validators.js';

/**
 * Built-in detectors. Each finds spans of sensitive text; the scanner resolves overlaps and applies
 * actions. Every pattern is written so that its cost is linear in the text: quantifiers are bounded
 * or start after a literal prefix, and unbounded runs use the `(?=(x+))\1` atomic idiom so that a
 * failed match never backtracks into them. Token patterns start with their literal prefix and check
 * the character before it with a lookbehind placed after the prefix (`eyJ(?<![…]eyJ)`): V8 then
 * scans for the literal, several times faster than a pattern that starts with a lookbehind.
 */

export type Emit = (start: number, end: number) => void;

export interface Detector {
  /** Stable identifier: the `type` in summaries and in `[REDACTED:<id>]`. */
  readonly id: string;
  /** Finds every span in `text`, calling `emit(start, end)` (end exclusive). */
  readonly find: (text: string, emit: Emit) => void;
}

export const BUILTIN_DETECTOR_IDS = [
  'email',
  'phone',
  'card',
  'ssn',
  'iban',
  'ipv4',
  'ipv6',
  'aws-access-key-id',
  'aws-secret-key',
  'github-token',
  'gitlab-token',
  'slack-token',
  'stripe-key',
  'openai-key',
  'jwt',
  'pem-private-key',
  'secret-assignment',
  'high-entropy',
] as const;
export type BuiltinDetectorId = (typeof BUILTIN_DETECTOR_IDS)[number];

/** Off unless a rule names them: they match too much ordinary data to be on by default. */
export const OPT_IN_DETECTORS: readonly BuiltinDetectorId[] = ['ipv4', 'ipv6', 'high-entropy'];
export const DEFAULT_DETECTOR_IDS: readonly BuiltinDetectorId[] = BUILTIN_DETECTOR_IDS.filter(
  (id) => !OPT_IN_DETECTORS.includes(id),
);

interface RegexOptions {
  /** Capture group holding the sensitive part (the match's tail), instead of the whole match. */
  readonly valueGroup?: number;
  readonly validate?: (match: RegExpExecArray) => boolean;
  /** Cheap test on the whole text; when false the regex is not run. */
  readonly prefilter?: (text: string) => boolean;
}

function regexDetector(id: string, regex: RegExp, options: RegexOptions = {}): Detector {
  if (!regex.global) throw new Error(`detector ${id}: regex must be global`);
  const { valueGroup, validate, prefilter } = options;
  return {
    id,
    find(text, emit) {
      if (prefilter !== undefined && !prefilter(text)) return;
      const re = regex;
      re.lastIndex = 0;
      for (let m = re.exec(text); m !== null; m = re.exec(text)) {
        if (m[0].length === 0) {
          re.lastIndex++;
          continue;
        }
        if (validate !== undefined && !validate(m)) {
          // Let a shorter candidate inside a rejected one be tried (e.g. a card inside a longer digit run).
          re.lastIndex = m.index + 1;
          continue;
        }
        if (valueGroup === undefined) {
          emit(m.index, m.index + m[0].length);
        } else {
          const value = m[valueGroup];
          if (value === undefined || value.length === 0) continue;
          const end = m.index + m[0].length - (m[0].endsWith(value) ? 0 : 1);
          emit(end - value.length, end);
        }
      }
    },
  };
}

// ---------------------------------------------------------------------------------------------
// e-mail: found from each '@' outwards with character loops (no regex over long words).

function isLocalChar(c: number): boolean {
  return (
    (c >= 97 && c <= 122) ||
    (c >= 65 && c <= 90) ||
    (c >= 48 && c <= 57) ||
    c === 46 || // .
    c === 95 || // _
    c === 37 || // %
    c === 43 || // +
    c === 45 // -
  );
}

function isDomainChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 45 || c === 46;
}

function isAlpha(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90);
}

const emailDetector: Detector = {
  id: 'email',
  find(text, emit) {
    let at = text.indexOf('@');
    let floor = 0;
    while (at !== -1) {
      let start = at;
      while (start > floor && at - start < 64 && isLocalChar(text.charCodeAt(start - 1))) start--;
      while (start < at && text.charCodeAt(start) === 46) start++;
      let end = at + 1;
      while (end < text.length && end - at <= 253 && isDomainChar(text.charCodeAt(end))) end++;
      while (end > at + 1 && (text.charCodeAt(end - 1) === 46 || text.charCodeAt(end - 1) === 45)) end--;
      if (start < at && validDomain(text, at + 1, end)) {
        emit(start, end);
        floor = end;
        at = text.indexOf('@', end);
      } else {
        at = text.indexOf('@', at + 1);
      }
    }
  },
};

function validDomain(text: string, start: number, end: number): boolean {
  if (end - start < 4) return false;
  let lastDot = -1;
  let labelStart = start;
  for (let i = start; i < end; i++) {
    if (text.charCodeAt(i) === 46) {
      if (i === labelStart) return false;
      lastDot = i;
      labelStart = i + 1;
    }
  }
  if (lastDot === -1) return false;
  const tldLength = end - lastDot - 1;
  if (tldLength < 2 || tldLength > 24) return false;
  for (let i = lastDot + 1; i < end; i++) if (!isAlpha(text.charCodeAt(i))) return false;
  return text.charCodeAt(start) !== 45;
}

// ---------------------------------------------------------------------------------------------
// Numbers: phone, card, SSN.

function countDigits(value: string): number {
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c >= 48 && c <= 57) n++;
  }
  return n;
}

function allSameDigit(digits: string): boolean {
  for (let i = 1; i < digits.length; i++) if (digits[i] !== digits[0]) return false;
  return true;
}

/**
 * International numbers start with `+` and a country code (E.164: 8–15 digits, separated by spaces,
 * dots, dashes or a parenthesised area code). National formats: NANP `(415) 555-0100`,
 * `415-555-0100`, `415.555.0100` (area and exchange codes starting 2–9), and trunk-prefixed
 * European style `020 7946 0958`, `030 12345678`, `01 23 45 67 89` (a leading 0, space-separated
 * groups, 9–11 digits). Unseparated national digit strings are not phones (they are order numbers,
 * timestamps and ids far more often).
 */
const phoneDetector = regexDetector(
  'phone',
  /(?<![\w+.-])(?:\+[1-9]\d{6,14}|\+[1-9]\d{0,3}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]\d{1,5}){1,6}|(?:1[ .-])?\(?[2-9]\d{2}\)?[ .-]\d{3}[ .-]\d{4}|\([2-9]\d{2}\)\d{3}-\d{4}|0\d{1,4}(?: \d{2,8}){1,4})(?![\w-]|\.\d)/g,
  {
    validate: (m) => {
      const text = m[0];
      const digits = text.replace(/\D/g, '');
      if (allSameDigit(digits.slice(-7))) return false;
      if (text.startsWith('+')) return digits.length >= 8 && digits.length <= 15;
      if (text.startsWith('0')) return digits.length >= 9 && digits.length <= 11;
      if (text.includes('(') !== text.includes(')')) return false;
      const national = digits.length === 11 ? digits.slice(1) : digits;
      if (national.length !== 10 || national.charCodeAt(3) < 50) return false;
      // NANP: separators must be used consistently ("415-555.0100" is not a phone number).
      if (text.includes('(')) return true;
      const seps = text.replace(/^1[ .-]/, '').replace(/\d/g, '');
      return !(seps.length === 2 && seps[0] !== seps[1]);
    },
  },
);

/** 13–19 digits, optionally in groups separated by one kind of space or dash; issuer prefix and Luhn checked. */
const cardDetector = regexDetector('card', /[2-6]\d{3}(?<![\w.-][2-6]\d{3})(?:[ -]?\d){8,15}(?![\w-]|\.\d)/g, {
  validate: (m) => {
    const text = m[0];
    const digits = text.replace(/\D/g, '');
    if (digits.length < 13 || digits.length > 19) return false;
    const hasSpace = text.includes(' ');
    const hasDash = text.includes('-');
    if (hasSpace && hasDash) return false;
    if ((hasSpace || hasDash) && !/^\d{4}(?:[ -]\d{4}){2,3}(?:[ -]\d{1,3})?$|^\d{4}[ -]\d{6}[ -]\d{4,5}$/.test(text)) {
      return false;
    }
    if (allSameDigit(digits)) return false;
    return cardPrefixValid(digits) && luhnValid(digits);
  },
});

const ssnDetector = regexDetector('ssn', /(\d{3})([- ])(?<![\w-]\d{3}[- ])(\d{2})\2(\d{4})(?![\w-])/g, {
  validate: (m) => ssnValid(m[1]!, m[3]!, m[4]!),
});

const ibanDetector = regexDetector(
  'iban',
  /(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])/g,
  {
    validate: (m) => ibanValid(m[0]),
  },
);

// ---------------------------------------------------------------------------------------------
// Network addresses (opt-in).

const OCTET = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const ipv4Detector = regexDetector('ipv4', new RegExp(`(?<![\\w.])${OCTET}(?:\\.${OCTET}){3}(?![\\w]|\\.\\d)`, 'g'));

const ipv6Detector = regexDetector(
  'ipv6',
  /(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|[0-9A-Fa-f]{1,4})?(?:%[0-9A-Za-z]{1,16})?(?![\w:])/g,
  {
    validate: (m) => {
      const address = m[0].replace(/%.*$/, '');
      if (!isIPv6(address)) return false;
      // At least two groups with digits: "a::b" style scope strings and bare "::" are not addresses worth masking.
      return /\d/.test(address) && (address.match(/[0-9A-Fa-f]+/g) ?? []).length >= 2;
    },
  },
);

// ---------------------------------------------------------------------------------------------
// Credentials with a recognisable shape.

const awsAccessKeyDetector = regexDetector(
  'aws-access-key-id',
  /A(?<![A-Za-z0-9]A)(?:KIA|SIA|BIA|CCA|GPA|IDA|IPA|NPA|NVA|ROA|PKA|SCA)[A-Z2-7]{16}(?![A-Za-z0-9])/g,
);

/** A 40-character secret access key, recognised by the name it is assigned to. */
const awsSecretKeyDetector = regexDetector(
  'aws-secret-key',
  /(?:aws_?secret_?access_?key|aws_?secret_?key|secret_?access_?key)["']?\s{0,4}(?:[:=]|=>)\s{0,4}["']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])/gi,
  { valueGroup: 1 },
);

const githubDetector = regexDetector(
  'github-token',
  /(?:gh[pousr]_(?<![A-Za-z0-9_]gh[pousr]_)[A-Za-z0-9]{36,251}|github_pat_(?<![A-Za-z0-9_]github_pat_)[A-Za-z0-9_]{50,244})(?![A-Za-z0-9_])/g,
);

const gitlabDetector = regexDetector(
  'gitlab-token',
  /gl(?<![A-Za-z0-9_-]gl)(?:pat|dt|rt|ptt|cbt|imt|soat|ffct|oas|agent)-[A-Za-z0-9_-]{20,255}(?![A-Za-z0-9_-])/g,
);

const slackTokenDetector = regexDetector(
  'slack-token',
  /x(?<![A-Za-z0-9-]x)(?:ox[abposre]|app)-[A-Za-z0-9-]{10,250}(?![A-Za-z0-9-])/g,
  {},
);
const slackWebhookDetector = regexDetector(
  'slack-token',
  /https:\/\/hooks\.slack\.com\/(?:services|workflows|triggers)\/[A-Za-z0-9/_-]{20,200}/g,
);
const slackDetector: Detector = {
  id: 'slack-token',
  find(text, emit) {
    slackTokenDetector.find(text, emit);
    slackWebhookDetector.find(text, emit);
  },
};

const stripeDetector = regexDetector(
  'stripe-key',
  /(?:[sr]k_(?<![A-Za-z0-9_][sr]k_)(?:live|test)_[A-Za-z0-9]{10,247}|whsec_(?<![A-Za-z0-9_]whsec_)[A-Za-z0-9]{24,128})(?![A-Za-z0-9_])/g,
);

const openaiDetector = regexDetector(
  'openai-key',
  /sk-(?<![A-Za-z0-9_-]sk-)(?:proj-|svcacct-|admin-|ant-api\d\d-)?(?=([A-Za-z0-9_-]{20,400}))\1(?![A-Za-z0-9_-])/g,
  { validate: (m) => /\d/.test(m[1]!) && /[A-Za-z]/.test(m[1]!) },
);

/** Three base64url segments, the first two JSON objects (`eyJ` = `{"`); the header must decode and name `alg` or `typ`. */
const jwtDetector = regexDetector(
  'jwt',
  /eyJ(?<![A-Za-z0-9_-]eyJ)(?=([A-Za-z0-9_-]+))\1\.eyJ(?=([A-Za-z0-9_-]+))\2\.(?=([A-Za-z0-9_-]*))\3/g,
  {
    validate: (m) => {
      try {
        const header = JSON.parse(Buffer.from(`eyJ${m[1]}`, 'base64url').toString('utf8')) as unknown;
        return typeof header === 'object' && header !== null && ('alg' in header || 'typ' in header);
      } catch {
        return false;
      }
    },
  },
);

/** `-----BEGIN … PRIVATE KEY-----` to its END line; a block without an END is masked to the end of its body. */
const pemDetector: Detector = {
  id: 'pem-private-key',
  find(text, emit) {
    let begin = text.indexOf('-----BEGIN ');
    while (begin !== -1) {
      const headerEnd = text.indexOf('-----', begin + 11);
      const label = headerEnd === -1 ? '' : text.slice(begin + 11, headerEnd);
      if (headerEnd !== -1 && headerEnd - begin < 80 && /^(?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?$/.test(label)) {
        const endMarker = `-----END ${label}-----`;
        const end = text.indexOf(endMarker, headerEnd + 5);
        let stop: number;
        if (end !== -1 && end - begin < 65_536) {
          stop = end + endMarker.length;
        } else {
          // Truncated block: the body is base64 with line breaks (raw or escaped as \n in JSON text).
          const body = /^(?:[A-Za-z0-9+/=\s:,-]|\\[nr])*/.exec(text.slice(headerEnd + 5, headerEnd + 5 + 65_536));
          stop = headerEnd + 5 + (body?.[0].length ?? 0);
        }
        emit(begin, stop);
        begin = text.indexOf('-----BEGIN ', stop);
      } else {
        begin = text.indexOf('-----BEGIN ', begin + 11);
      }
    }
  },
};

/** Names whose value is a secret; shared by the text detector and the key-based rule for JSON objects. */
export const SECRET_KEY_PATTERN =
  /^(?:password|passwd|pwd|pass|secret|client[_-]?secret|api[_-]?key|apikey|access[_-]?token|auth[_-]?token|refresh[_-]?token|bearer[_-]?token|token|private[_-]?key|secret[_-]?key|passphrase|credentials?)$/i;

const ASSIGNMENT_NAMES =
  'pass(?:word|wd|phrase)?|pwd|secret(?:[_-]?key)?|client[_-]?secret|api[_-]?key|apikey|(?:access|auth|refresh|bearer)[_-]?token|token|private[_-]?key|credentials?';

/** A value that says nothing: empty, a placeholder, or already redacted. */
const NON_SECRET_VALUE =
  /^(?:null|none|nil|true|false|undefined|required|optional|string|\*+|x+|\.{3}|<[^>]*>|\[REDACTED[^\]]*\]|\$\{[^}]*\}?|%s)$/i;

/**
 * `password=hunter2`, `secret: abc`, `"api_key": "…"`, `token => '…'`: only the value is masked.
 * The name must stand alone (`token` but not `tokens` or `max_tokens`), possibly prefixed by `_` or `-`
 * joined words (`db_password`, `x-api-key`).
 */
const ASSIGNMENT_REGEX = new RegExp(
  `(?:${ASSIGNMENT_NAMES})["']?[ \\t]{0,4}(?::|=>|=)[ \\t]{0,4}(?:"([^"\\r\\n\\\\]{1,512})"|'([^'\\r\\n]{1,512})'|([^\\s"',;&}<>\\\\]{1,512}))`,
  'gi',
);

const assignmentDetector: Detector = {
  id: 'secret-assignment',
  find(text, emit) {
    const re = ASSIGNMENT_REGEX;
    re.lastIndex = 0;
    for (let m = re.exec(text); m !== null; m = re.exec(text)) {
      if (m.index > 0 && /[A-Za-z0-9]/.test(text[m.index - 1]!)) {
        re.lastIndex = m.index + 1;
        continue;
      }
      const quoted = m[1] ?? m[2];
      const value = quoted ?? m[3] ?? '';
      if (value.trim().length === 0 || NON_SECRET_VALUE.test(value.trim())) continue;
      const end = m.index + m[0].length - (quoted === undefined ? 0 : 1);
      emit(end - value.length, end);
    }
  },
};

/** Long base64/hex-like tokens with high Shannon entropy and mixed character classes (opt-in). */
const highEntropyDetector = regexDetector(
  'high-entropy',
  /(?<![A-Za-z0-9+/_=-])(?=([A-Za-z0-9+/_=-]{24,512}))\1(?![A-Za-z0-9+/_=-])/g,
  {
    validate: (m) => {
      const token = m[1]!;
      if (!/[a-z]/.test(token) || !/[A-Z]/.test(token) || !/\d/.test(token)) return false;
      return shannonEntropy(token) >= 4.0;
    },
  },
);

export const BUILTIN_DETECTORS: Readonly<Record<BuiltinDetectorId, Detector>> = {
  email: emailDetector,
  phone: phoneDetector,
  card: cardDetector,
  ssn: ssnDetector,
  iban: ibanDetector,
  ipv4: ipv4Detector,
  ipv6: ipv6Detector,
  'aws-access-key-id': awsAccessKeyDetector,
  'aws-secret-key': awsSecretKeyDetector,
  'github-token': githubDetector,
  'gitlab-token': gitlabDetector,
  'slack-token': slackDetector,
  'stripe-key': stripeDetector,
  'openai-key': openaiDetector,
  jwt: jwtDetector,
  'pem-private-key': pemDetector,
  'secret-assignment': assignmentDetector,
  'high-entropy': highEntropyDetector,
};

/** Detectors whose matches can be longer than the scanner's chunk overlap; they always see the whole text. */
export const WHOLE_TEXT_DETECTORS: ReadonlySet<string> = new Set(['pem-private-key', 'jwt']);

export { countDigits };
