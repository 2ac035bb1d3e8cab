import { describe, expect, it } from 'vitest';
import { createTokenCheck } from '../../../src/admin/auth.js';
import { bearerTokenProblem } from '../../../src/lib/bearer-token.js';

const TOKEN = 'a-Valid_token.0123~+/';

describe('bearerTokenProblem (RFC 6750 b64token)', () => {
  it('accepts letters, digits, - . _ ~ + / and trailing =', () => {
    for (const token of [TOKEN, 'abcdefghijklmnop==', 'ABCDEFGHIJKLMNOP=']) {
      expect({ token, problem: bearerTokenProblem(token) }).toEqual({ token, problem: null });
    }
  });

  it('refuses white space anywhere, saying where, without echoing the token', () => {
    const spaced = bearerTokenProblem('correct horse battery staple');
    expect(spaced).toMatch(/^contains white space at character 8/);
    expect(spaced).not.toContain('horse');
    expect(bearerTokenProblem(`${TOKEN}\n`)).toMatch(
      new RegExp(`^contains white space at character ${TOKEN.length + 1}`),
    );
    expect(bearerTokenProblem(`\t${TOKEN}`)).toMatch(/^contains white space at character 1/);
  });

  it('refuses other characters, and = before the end', () => {
    expect(bearerTokenProblem('abcdefgh:ijklmnop')).toMatch(/^character 9 is not allowed/);
    expect(bearerTokenProblem('abcdefgh"ijklmnop')).toMatch(/^character 9 is not allowed/);
    expect(bearerTokenProblem('abcdéfghijklmnop')).toMatch(/^character 5 is not allowed/);
    expect(bearerTokenProblem('abcd=efghijklmnop')).toMatch(/^character 6 is not allowed/);
    expect(bearerTokenProblem('')).toMatch(/^is empty/);
  });
});

describe('createTokenCheck', () => {
  const check = createTokenCheck(TOKEN);

  it('accepts the token after Bearer, any case of the scheme, surrounding blanks trimmed', () => {
    expect(check(`Bearer ${TOKEN}`)).toBe(true);
    expect(check(`bearer ${TOKEN}`)).toBe(true);
    expect(check(`BEARER \t ${TOKEN} `)).toBe(true);
  });

  it('refuses anything else', () => {
    expect(check(undefined)).toBe(false);
    expect(check('')).toBe(false);
    expect(check(TOKEN)).toBe(false);
    expect(check(`Bearer${TOKEN}`)).toBe(false);
    expect(check(`Basic ${TOKEN}`)).toBe(false);
    expect(check(`Bearer ${TOKEN}x`)).toBe(false);
    expect(check(`Bearer ${TOKEN} ${TOKEN}`)).toBe(false);
  });

  it('throws for a token no client could send (configuration validates it first)', () => {
    expect(() => createTokenCheck('correct horse battery staple')).toThrow(TypeError);
    expect(() => createTokenCheck(`${TOKEN}\n`)).toThrow(TypeError);
  });
});
