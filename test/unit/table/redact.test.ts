/** Issue 10 item 5: credentials never show in echoed text. */
import { describe, expect, it } from 'vitest';
import { redactText } from '../../../src/table/redact.js';
import { parseCommandInput } from '../../../src/table/validate.js';

describe('redactText', () => {
  it.each([
    ['http://user:pw@host:1', 'http://***@host:1'],
    ['redis://:pw@10.0.0.1:6379/0', 'redis://***@10.0.0.1:6379/0'],
    ['http:user:pw@host', 'http:***@host'],
    ['http://u:p@ss@host/x@y', 'http://***@host/x@y'],
    ['see http://a:b@h and https://c:d@i', 'see http://***@h and https://***@i'],
    ['Authorization: Bearer abc.def', 'Authorization: Bearer ***'],
    ['basic dXNlcjpwdw==', 'basic ***'],
    ['http://host:8080/path', 'http://host:8080/path'],
    ['alice@example.com', 'alice@example.com'],
  ])('%s', (text, shown) => {
    expect(redactText(text, 256)).toBe(shown);
  });

  it('cuts long text and drops an authority left open by the cut', () => {
    expect(redactText('x'.repeat(300), 10)).toBe(`${'x'.repeat(10)}…`);
    expect(redactText('go to http://user:secret@host', 20)).toBe('go to http://…');
  });

  it('is linear on a long run of scheme characters', () => {
    const started = performance.now();
    redactText('a'.repeat(1_000_000), 256);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('validation messages echo URLs without their credentials', () => {
    expect(() =>
      parseCommandInput({
        op: 'set-pool',
        pool: 'green',
        version: 'abcdef1',
        endpoints: ['http://ops:s3cret@127.0.0.1:99999'],
      }),
    ).toThrow('endpoints[0]: "http://***@127.0.0.1:99999" is not an absolute URL');
  });
});
