import { describe, expect, it } from 'vitest';
import { isAllowedHost, isAllowedOrigin } from '../src/index.js';

describe('isAllowedHost', () => {
  it.each([
    'localhost',
    'localhost:8080',
    'LOCALHOST:80',
    '127.0.0.1',
    '127.0.0.1:3000',
    '[::1]',
    '[::1]:8080',
    ' localhost:1 ',
  ])('accepts the loopback host %j', (host) => {
    expect(isAllowedHost(host, [])).toBe(true);
  });

  it.each([
    'evil.example',
    'evil.example:8080',
    'localhost.evil.com',
    'localhost.evil.com:8080',
    '127.0.0.1.nip.io',
    '127.0.0.2',
    '0.0.0.0:8080',
    '[::2]:8080',
    'evil.com:localhost',
  ])('rejects the rebinding attempt %j', (host) => {
    expect(isAllowedHost(host, [])).toBe(false);
  });

  it('rejects a bracketed loopback address followed by anything but a port', () => {
    expect(isAllowedHost('[::1].evil.com', [])).toBe(false);
    expect(isAllowedHost('[::1]evil:8080', [])).toBe(false);
  });

  it('rejects a missing or empty Host', () => {
    expect(isAllowedHost(undefined, [])).toBe(false);
    expect(isAllowedHost('', [])).toBe(false);
  });

  it('accepts configured extras by hostname (any port) or by exact host:port', () => {
    expect(isAllowedHost('gateway.internal', ['gateway.internal'])).toBe(true);
    expect(isAllowedHost('Gateway.Internal:9000', ['gateway.internal'])).toBe(true);
    expect(isAllowedHost('gateway.internal:9000', ['gateway.internal:9000'])).toBe(true);
    expect(isAllowedHost('gateway.internal:1234', ['gateway.internal:9000'])).toBe(false);
    expect(isAllowedHost('other.internal', ['gateway.internal'])).toBe(false);
    expect(isAllowedHost('gateway.internal.evil.com', ['gateway.internal'])).toBe(false);
  });
});

describe('isAllowedOrigin', () => {
  it.each([
    'http://localhost',
    'http://localhost:5173',
    'https://localhost:8443',
    'http://127.0.0.1:8080',
    'http://[::1]:8080',
  ])('accepts the loopback origin %j', (origin) => {
    expect(isAllowedOrigin(origin, [])).toBe(true);
  });

  it.each([
    'http://evil.example',
    'http://evil.example:8080',
    'http://localhost.evil.com',
    'https://127.0.0.1.nip.io',
    'http://localhost@evil.example',
    'file://localhost',
    'chrome-extension://localhost',
    'null',
    '',
    'not a url',
  ])('rejects the origin %j', (origin) => {
    expect(isAllowedOrigin(origin, [])).toBe(false);
  });

  it('accepts configured origins exactly', () => {
    expect(isAllowedOrigin('https://app.example.com', ['https://app.example.com'])).toBe(true);
    expect(isAllowedOrigin('https://app.example.com:8443', ['https://app.example.com'])).toBe(false);
    expect(isAllowedOrigin('https://evil.example.com', ['https://app.example.com'])).toBe(false);
  });
});
