import { describe, expect, it } from 'vitest';
import {
  assertValidUpstreamName,
  canonicalName,
  DEFAULT_SEPARATOR,
  isValidToolName,
  namespacedName,
  namespacedUri,
  PortcullisError,
  splitNamespacedUri,
} from '../src/index.js';

describe('canonicalName', () => {
  it('folds letter case', () => {
    expect(canonicalName('A__Test_Simple_Text')).toBe('a__test_simple_text');
  });

  it('folds Unicode compatibility forms with NFKC', () => {
    // Fullwidth letters and the "fi" ligature are compatibility forms of ASCII letters.
    expect(canonicalName('ＦＳ__read')).toBe('fs__read');
    expect(canonicalName('\uFB01le')).toBe('file');
    // A precomposed and a decomposed é are the same name.
    expect(canonicalName('caf\u00E9')).toBe(canonicalName('cafe\u0301'));
  });

  it('returns lower-case ASCII names as they are, and folds any other the same as before', () => {
    const name = 'fixture_echo.v2-x';
    expect(canonicalName(name)).toBe(name);
    for (const other of ['Fixture_Echo', 'fixture_échо', 'ｆｉｘｔｕｒｅ', 'tab\tname', '']) {
      expect(canonicalName(other)).toBe(other.normalize('NFKC').toLowerCase());
    }
  });

  it('keeps names that differ in more than spelling apart', () => {
    expect(canonicalName('fs__read')).not.toBe(canonicalName('fs__reads'));
  });
});

describe('namespacedName', () => {
  it('joins prefix and name with the separator', () => {
    expect(namespacedName('fs', 'read_file', { separator: DEFAULT_SEPARATOR })).toBe('fs__read_file');
    expect(namespacedName('fs', 'read_file', { separator: '.' })).toBe('fs.read_file');
  });

  it('leaves the name unchanged without a prefix', () => {
    expect(namespacedName(undefined, 'read_file', { separator: '__' })).toBe('read_file');
  });
});

describe('isValidToolName', () => {
  it('accepts the spec charset up to 128 characters', () => {
    expect(isValidToolName('a')).toBe(true);
    expect(isValidToolName('fs__read-file.v2_X')).toBe(true);
    expect(isValidToolName('x'.repeat(128))).toBe(true);
  });

  it('rejects empty, overlong and out-of-charset names', () => {
    expect(isValidToolName('')).toBe(false);
    expect(isValidToolName('x'.repeat(129))).toBe(false);
    expect(isValidToolName('has space')).toBe(false);
    expect(isValidToolName('slash/name')).toBe(false);
    expect(isValidToolName('caf\u00E9')).toBe(false);
    expect(isValidToolName('line\nbreak')).toBe(false);
  });
});

describe('assertValidUpstreamName', () => {
  it('accepts lowercase names starting with a letter', () => {
    expect(() => assertValidUpstreamName('fs')).not.toThrow();
    expect(() => assertValidUpstreamName('my-server-2')).not.toThrow();
    expect(() => assertValidUpstreamName(`a${'b'.repeat(31)}`)).not.toThrow();
  });

  it.each(['', 'Fs', '2fs', '-fs', 'my_server', 'a+b', 'fs.x', `a${'b'.repeat(32)}`])('rejects %j', (name) => {
    let caught: unknown;
    try {
      assertValidUpstreamName(name);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(PortcullisError);
    expect((caught as PortcullisError).code).toBe('upstream.invalid_name');
    expect((caught as PortcullisError).message).toContain(`"${name}"`);
  });
});

describe('namespacedUri / splitNamespacedUri', () => {
  it.each([
    'test://static-text',
    'file:///home/user/notes.txt',
    'https://example.com/a+b?q=1+2',
    'test://template/{id}/data',
    'file:///{path}',
    'urn:isbn:0451450523',
  ])('round-trips %s', (original) => {
    const exposed = namespacedUri('fs', original);
    expect(exposed).toBe(`fs+${original}`);
    expect(splitNamespacedUri(exposed)).toEqual({ prefix: 'fs', uri: original });
  });

  it('leaves a URI unchanged without a prefix', () => {
    expect(namespacedUri(undefined, 'file:///etc/hosts')).toBe('file:///etc/hosts');
  });

  it('produces a URI whose scheme is still valid', () => {
    const exposed = namespacedUri('my-fs', 'file:///tmp/x');
    expect(new URL(exposed).protocol).toBe('my-fs+file:');
  });

  it('does not split a URI whose "+" is after the scheme or that has no scheme', () => {
    expect(splitNamespacedUri('file:///a+b')).toBeUndefined();
    expect(splitNamespacedUri('https://example.com/?q=a+b')).toBeUndefined();
    expect(splitNamespacedUri('+file:///x')).toBeUndefined();
    expect(splitNamespacedUri('fs+nocolon')).toBeUndefined();
  });
});
