/**
 * Pure parts of the request path's hygiene (issue 10): the hop-by-hop table and Connection
 * options, the Via loop token, and which endpoint addresses reach this replica's own listeners.
 */
import { hostname } from 'node:os';
import { describe, expect, test } from 'vitest';
import { viaHasToken } from '../../../src/data/forward.js';
import {
  HOP_BY_HOP_HEADERS,
  isHopByHop,
  removeConnectionNamed,
  stripHopByHop,
} from '../../../src/data/hop-by-hop.js';
import { reachesListener } from '../../../src/data/own-listeners.js';

describe('hop-by-hop headers', () => {
  test('the table holds RFC 9110 §7.6.1 fields and the legacy ones, never Host', () => {
    for (const name of ['connection', 'keep-alive', 'te', 'transfer-encoding', 'upgrade'])
      expect(isHopByHop(name)).toBe(true);
    expect(HOP_BY_HOP_HEADERS).not.toContain('host');
    expect(isHopByHop('host')).toBe(false);
  });

  test('a Connection option removes the field it names, but never Host or Content-Length', () => {
    const headers = ['Host', 'a.example', 'X-Secret', '1', 'Content-Length', '5', 'x-kept', 'y'];
    expect(removeConnectionNamed(headers, 'close, HOST, x-secret, content-length')).toEqual([
      'Host',
      'a.example',
      'Content-Length',
      '5',
      'x-kept',
      'y',
    ]);
    expect(removeConnectionNamed(headers, 'keep-alive')).toBe(headers);
  });

  test('stripHopByHop drops hop-by-hop fields and those every Connection header names', () => {
    expect(
      stripHopByHop([
        'Connection',
        'x-a',
        'X-A',
        '1',
        'Transfer-Encoding',
        'chunked',
        'connection',
        'x-b',
        'x-b',
        '2',
        'Set-Cookie',
        'c=1',
      ]),
    ).toEqual(['Set-Cookie', 'c=1']);
  });
});

describe('Via loop token', () => {
  const token = 'switchyard-0123456789ab';

  test.each([
    [`1.1 ${token}`, true],
    [`1.0 fred, 1.1 ${token}`, true],
    [`1.1 ${token} (comment), 1.1 other`, true],
    [`1.1 ${token}\t, 1.1 other`, true],
    [`1.1 ${token}cd`, false],
    [`1.1 x${token}`, false],
    [`1.1 other (${token}x)`, false],
    ['1.1 other', false],
  ])('%j has the token: %s', (via, expected) => {
    expect(viaHasToken(via, token)).toBe(expected);
  });
});

describe('own listeners', () => {
  const any = [{ host: '0.0.0.0', port: 8080 }];
  const loop = [{ host: '127.0.0.1', port: 9090 }];

  test('a listener on the any address is reached through loopback, any and own names', () => {
    for (const host of ['127.0.0.1', '127.3.4.5', 'localhost', '[::1]', '::1', '0.0.0.0', '::'])
      expect(reachesListener(host, 8080, any), host).toBe(true);
    expect(reachesListener(hostname(), 8080, any)).toBe(true);
    expect(reachesListener('127.0.0.1', 8081, any)).toBe(false);
    expect(reachesListener('192.0.2.10', 8080, any)).toBe(false);
  });

  test('a loopback listener is reached through its address, localhost and any only', () => {
    expect(reachesListener('127.0.0.1', 9090, loop)).toBe(true);
    expect(reachesListener('LOCALHOST', 9090, loop)).toBe(true);
    expect(reachesListener('0.0.0.0', 9090, loop)).toBe(true);
    expect(reachesListener('::ffff:127.0.0.1', 9090, loop)).toBe(true);
    expect(reachesListener('127.0.0.2', 9090, loop)).toBe(false);
    expect(reachesListener('192.0.2.10', 9090, loop)).toBe(false);
  });

  test('a listener on a specific address is reached through that address only', () => {
    const lan = [{ host: '192.0.2.7', port: 80 }];
    expect(reachesListener('192.0.2.7', 80, lan)).toBe(true);
    expect(reachesListener('127.0.0.1', 80, lan)).toBe(false);
  });
});
