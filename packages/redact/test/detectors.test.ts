import { describe, expect, it } from 'vitest';
import { BUILTIN_DETECTORS, type BuiltinDetectorId, DEFAULT_DETECTOR_IDS, OPT_IN_DETECTORS } from '../src/index.js';

function find(id: BuiltinDetectorId, text: string): string[] {
  const out: string[] = [];
  BUILTIN_DETECTORS[id].find(text, (start, end) => out.push(text.slice(start, end)));
  return out;
}

// Test credentials are assembled at run time so that secret scanners do not flag this file.
const j = (...parts: string[]) => parts.join('');

interface Case {
  readonly id: BuiltinDetectorId;
  readonly positives: readonly [text: string, expected: string][];
  readonly negatives: readonly string[];
}

const jwt = j(
  'eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9',
  '.',
  'eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ',
  '.',
  'SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c',
);
const pem = j(
  '-----BEGIN ',
  'RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1234abcd\nZZZZ==\n-----END ',
  'RSA PRIVATE KEY-----',
);

const cases: Case[] = [
  {
    id: 'email',
    positives: [
      ['write to alice.smith+tag@example.co.uk today', 'alice.smith+tag@example.co.uk'],
      ['<bob@mail.example.com>', 'bob@mail.example.com'],
      ['"x_y%z@sub-domain.example.org",', 'x_y%z@sub-domain.example.org'],
      ['end of sentence: carol@example.com.', 'carol@example.com'],
    ],
    negatives: [
      '@mention in chat',
      'user@localhost',
      'npm i @types/node@20',
      'a @ b.com',
      'x@y.c',
      'me@123.456',
      'git@github',
    ],
  },
  {
    id: 'phone',
    positives: [
      ['call +14155550123 now', '+14155550123'],
      ['tel: +44 20 7946 0958.', '+44 20 7946 0958'],
      ['+1 (415) 555-0123', '+1 (415) 555-0123'],
      ['(415) 555-0123', '(415) 555-0123'],
      ['office 415-555-0123 ext', '415-555-0123'],
      ['415.555.0123', '415.555.0123'],
      ['1-800-555-0199', '1-800-555-0199'],
      ['Berlin 030 12345678', '030 12345678'],
      ['Paris 01 23 45 67 89', '01 23 45 67 89'],
      ['+33 1 23 45 67 89', '+33 1 23 45 67 89'],
    ],
    negatives: [
      'date 2024-01-15',
      'version 1.2.3',
      'id 4155550123',
      'ip 192.168.100.200',
      '123-456-7890',
      '415-555.0123',
      'time 12:30:45',
      '+1234',
      'total 1,234,567.89',
      'order 20240115123045',
      '+1 111 1111111',
    ],
  },
  {
    id: 'card',
    positives: [
      ['visa 4111111111111111 ok', '4111111111111111'],
      ['4111 1111 1111 1111', '4111 1111 1111 1111'],
      ['mc 5555-5555-5555-4444', '5555-5555-5555-4444'],
      ['amex 378282246310005', '378282246310005'],
      ['amex 3782 822463 10005', '3782 822463 10005'],
      ['2-series 2223003122003222', '2223003122003222'],
      ['discover 6011111111111117', '6011111111111117'],
    ],
    negatives: [
      '4111111111111112',
      '1234567812345670',
      '4111 1111-1111 1111',
      '41111 11111 11111 1',
      'uuid 550e8400-e29b-41d4-a716-446655440000',
      'ts 1700000000000',
      '00000000000000000',
      'x4111111111111111',
    ],
  },
  {
    id: 'ssn',
    positives: [
      ['ssn 536-22-4567', '536-22-4567'],
      ['SSN: 536 22 1234', '536 22 1234'],
    ],
    negatives: [
      '000-12-3456',
      '666-12-3456',
      '900-12-3456',
      '123-00-4567',
      '123-45-0000',
      '078-05-1120',
      '123-45-6789',
      '123456789',
      '123-45 6789',
      'a123-45-6789',
    ],
  },
  {
    id: 'iban',
    positives: [
      ['DE89370400440532013000', 'DE89370400440532013000'],
      ['IBAN: GB82 WEST 1234 5698 7654 32.', 'GB82 WEST 1234 5698 7654 32'],
      ['FR1420041010050500013M02606', 'FR1420041010050500013M02606'],
      ['NO9386011117947', 'NO9386011117947'],
    ],
    negatives: [
      'DE89370400440532013001',
      'GB82WEST123456987654',
      'XX89370400440532013000',
      'ABCD EFGH IJKL MNOP',
      'DE8937040044053201300',
    ],
  },
  {
    id: 'ipv4',
    positives: [
      ['host 192.168.1.10 up', '192.168.1.10'],
      ['from 8.8.8.8.', '8.8.8.8'],
      ['255.255.255.255', '255.255.255.255'],
    ],
    negatives: ['256.1.1.1', '1.2.3', 'v1.2.3.4.5', '10.0.0.1a', '1.2.3.04x'],
  },
  {
    id: 'ipv6',
    positives: [
      ['addr 2001:db8::8a2e:370:7334 up', '2001:db8::8a2e:370:7334'],
      ['fe80::1%eth0', 'fe80::1%eth0'],
      ['[2001:0db8:85a3:0000:0000:8a2e:0370:7334]:443', '2001:0db8:85a3:0000:0000:8a2e:0370:7334'],
      ['::ffff:192.0.2.128', '::ffff:192.0.2.128'],
    ],
    negatives: ['time 12:30:45', 'std::vector', 'a::b', '::', 'de:ad:be:ef', 'aa:bb:cc:dd:ee:ff:gg'],
  },
  {
    id: 'aws-access-key-id',
    positives: [[j('key ', 'AKIA', 'IOSFODNN7EXAMPLE', ' end'), j('AKIA', 'IOSFODNN7EXAMPLE')]],
    negatives: ['AKIAIOSFODNN7EXAMPL', j('AKIA', 'IOSFODNN7EXAMPLE1X'), 'akiaiosfodnn7example', 'AKIA1OSFODNN7EXAMPLE'],
  },
  {
    id: 'aws-secret-key',
    positives: [
      [
        j('aws_secret_access_key = ', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'),
        j('wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY'),
      ],
      [
        j('"SecretAccessKey": "', 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', '"'),
        'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      ],
    ],
    negatives: ['wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY', 'aws_secret_access_key = short'],
  },
  {
    id: 'github-token',
    positives: [
      [j('token ', 'ghp_', 'a'.repeat(36)), j('ghp_', 'a'.repeat(36))],
      [j('gho_', 'Ab1'.repeat(12)), j('gho_', 'Ab1'.repeat(12))],
      [j('github_pat_', '11ABCDEFG0', 'x'.repeat(72)), j('github_pat_', '11ABCDEFG0', 'x'.repeat(72))],
    ],
    negatives: [j('ghp_', 'a'.repeat(20)), j('ghx_', 'a'.repeat(36)), j('xghp_', 'a'.repeat(36))],
  },
  {
    id: 'gitlab-token',
    positives: [[j('glpat', '-', 'aB3dE6gH9jK2mN5pQ8sT'), j('glpat', '-', 'aB3dE6gH9jK2mN5pQ8sT')]],
    negatives: [j('glpat', '-short'), 'glpats-aB3dE6gH9jK2mN5pQ8sT'],
  },
  {
    id: 'slack-token',
    positives: [
      [
        j('xoxb', '-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx'),
        j('xoxb', '-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx'),
      ],
      [
        j('https://hooks.slack.com/services/', 'T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX'),
        j('https://hooks.slack.com/services/', 'T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX'),
      ],
    ],
    negatives: ['xoxb-123', 'xoxz-123456789012-1234567890123', 'https://hooks.slack.com/'],
  },
  {
    id: 'stripe-key',
    positives: [
      [j('sk', '_live_', '4eC39HqLyjWDarjtT1zdp7dc'), j('sk', '_live_', '4eC39HqLyjWDarjtT1zdp7dc')],
      [j('rk', '_test_', '4eC39HqLyjWDarjtT1zdp7dc'), j('rk', '_test_', '4eC39HqLyjWDarjtT1zdp7dc')],
      [j('whsec', '_', 'abcdefghijklmnopqrstuvwxyz012345'), j('whsec', '_', 'abcdefghijklmnopqrstuvwxyz012345')],
    ],
    negatives: [j('pk', '_live_', '4eC39HqLyjWDarjtT1zdp7dc'), 'sk_live_short', 'ask_live_4eC39HqLyjWDarjtT1zdp7dc'],
  },
  {
    id: 'openai-key',
    positives: [
      [j('OPENAI=', 'sk-', 'proj-', 'Ab3dEf6hIj9lMn2pQr5tUv8xYz1'), j('sk-', 'proj-', 'Ab3dEf6hIj9lMn2pQr5tUv8xYz1')],
      [j('sk-', 'abcdefghij0123456789ABCDEFGHIJ'), j('sk-', 'abcdefghij0123456789ABCDEFGHIJ')],
    ],
    negatives: ['task-list-item', 'sk-learn-is-a-python-library', 'sk-abc', 'risk-assessment-2024-document-final'],
  },
  {
    id: 'jwt',
    positives: [[`Authorization: Bearer ${jwt}`, jwt]],
    negatives: ['eyJhbGciOi', 'eyJub3Rqc29u.eyJub3Rqc29u.sig', 'eyJ9999.eyJ9999.'],
  },
  {
    id: 'pem-private-key',
    positives: [
      [`key:\n${pem}\ndone`, pem],
      [JSON.stringify({ key: pem }), JSON.stringify(pem).slice(1, -1)],
      [
        j('-----BEGIN ', 'PRIVATE KEY-----\nMIIEvQIBADANBg\nAAAA'),
        j('-----BEGIN ', 'PRIVATE KEY-----\nMIIEvQIBADANBg\nAAAA'),
      ],
    ],
    negatives: [
      '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----',
      '-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----',
    ],
  },
  {
    id: 'secret-assignment',
    positives: [
      ['password=hunter2&user=x', 'hunter2'],
      ['DB_PASSWORD: "s3cr3t pass"', 's3cr3t pass'],
      ['{"api_key":"abc123def"}', 'abc123def'],
      ["client_secret => 'xyz789'", 'xyz789'],
      ['secret: opensesame', 'opensesame'],
      ['X-Api-Key=k-123', 'k-123'],
      ['token = tkn_42', 'tkn_42'],
    ],
    negatives: [
      'password: null',
      'password=',
      'max_tokens=100 passwords: many tokens: 5',
      'secretary: Jane',
      'password: "[REDACTED:secret-assignment]"',
      'the secret is out',
      'password: ********',
      // biome-ignore lint/suspicious/noTemplateCurlyInString: a literal placeholder, as in a config file.
      'token: ${TOKEN}',
    ],
  },
  {
    id: 'high-entropy',
    positives: [['blob Zx9Qw3Er7Ty1Ui5Op2As6Df0Gh4Jk8L end', 'Zx9Qw3Er7Ty1Ui5Op2As6Df0Gh4Jk8L']],
    negatives: [
      'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
      'ThisIsJustAVeryLongCamelCaseIdentifierName',
      '0123456789abcdef0123456789abcdef',
      'short1A',
    ],
  },
];

describe('built-in detectors', () => {
  for (const { id, positives, negatives } of cases) {
    describe(id, () => {
      for (const [text, expected] of positives) {
        it(`finds ${JSON.stringify(expected).slice(0, 60)}`, () => {
          expect(find(id, text)).toEqual([expected]);
        });
      }
      for (const text of negatives) {
        it(`ignores ${JSON.stringify(text).slice(0, 60)}`, () => {
          expect(find(id, text)).toEqual([]);
        });
      }
    });
  }

  it('covers every built-in detector', () => {
    expect(new Set(cases.map((c) => c.id))).toEqual(new Set(Object.keys(BUILTIN_DETECTORS)));
  });

  it('turns ip addresses and high-entropy strings on only by request', () => {
    expect(OPT_IN_DETECTORS).toEqual(['ipv4', 'ipv6', 'high-entropy']);
    for (const id of OPT_IN_DETECTORS) expect(DEFAULT_DETECTOR_IDS).not.toContain(id);
  });

  it('finds several matches in one text, in order', () => {
    expect(find('email', 'a@example.com, b@example.org; c@example.net')).toEqual([
      'a@example.com',
      'b@example.org',
      'c@example.net',
    ]);
  });

  it('stays fast on adversarial input (no catastrophic backtracking)', () => {
    const inputs = [
      'a'.repeat(200_000),
      `${'1'.repeat(100_000)}x`,
      'eyJ'.repeat(50_000),
      `+1${' 1'.repeat(50_000)}x`,
      `${'a.'.repeat(50_000)}@`,
      `${'password='.repeat(20_000)}`,
      '-----BEGIN PRIVATE KEY-----'.repeat(5_000),
      `${'sk-'.repeat(30_000)}`,
      `${'1:'.repeat(50_000)}`,
    ];
    for (const input of inputs) {
      const started = performance.now();
      for (const id of Object.keys(BUILTIN_DETECTORS) as BuiltinDetectorId[]) find(id, input);
      expect(performance.now() - started, input.slice(0, 20)).toBeLessThan(1500);
    }
  });
});
