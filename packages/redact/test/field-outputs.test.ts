import { describe, expect, it } from 'vitest';
import { Redactor } from '../src/index.js';

describe('field rules and detectors together', () => {
  it('does not re-mask the placeholder a field rule wrote when a detector matches its letters', async () => {
    const redactor = new Redactor({
      rules: [
        { name: 'words', custom: [{ id: 'word', pattern: '[A-Za-z]{3,}' }], args: true },
        {
          name: 'pins',
          fields: [
            { path: '$.pin', action: 'mask' },
            { path: '$.id', action: 'hash' },
          ],
          args: true,
        },
      ],
      hashKey: 'a test hash key of enough bytes',
    });
    const subject = { upstream: 'u', kind: 'tool' as const, name: 't' };
    const { value } = await redactor.redactResult(
      'tools/call',
      { content: [], structuredContent: { pin: '1234', id: 'abc', note: 'hello 42' } },
      subject,
    );
    const structured = (value as { structuredContent: Record<string, string> }).structuredContent;
    expect(structured.pin).toBe('[REDACTED:pin]');
    expect(structured.id).toMatch(/^\[HASH:id:[0-9a-f]{16}\]$/);
    expect(structured.note).toBe('[REDACTED:word] 42');
    const args = await redactor.redactArgs({ pin: '1234', note: 'hello' }, subject);
    expect(args.value).toEqual({ pin: '[REDACTED:pin]', note: '[REDACTED:word]' });
  });

  it('still scans an upstream string that only looks like another placeholder', async () => {
    const redactor = new Redactor({
      rules: [
        { name: 'words', custom: [{ id: 'word', pattern: 'secret[a-z]*' }] },
        { name: 'pins', fields: [{ path: '$.pin', action: 'mask' }] },
      ],
    });
    const { value } = await redactor.redactResult(
      'tools/call',
      { content: [], structuredContent: { pin: '1', other: '[REDACTED:secretvalue]' } },
      { upstream: 'u', kind: 'tool', name: 't' },
    );
    expect((value as { structuredContent: Record<string, string> }).structuredContent.other).toBe(
      '[REDACTED:[REDACTED:word]]',
    );
  });
});
