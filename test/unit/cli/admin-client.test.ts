import { describe, expect, it } from 'vitest';
import {
  AdminUnreachableError,
  adminCallUrl,
  hasUserinfo,
  redactUserinfo,
} from '../../../src/cli/admin-client.js';

describe('adminCallUrl', () => {
  it('keeps the base URL path prefix (an admin API behind a reverse proxy)', () => {
    expect(adminCallUrl('http://host:9090/switchyard', '/v1/state')).toBe(
      'http://host:9090/switchyard/v1/state',
    );
    expect(adminCallUrl('http://host:9090/switchyard/', '/v1/state')).toBe(
      'http://host:9090/switchyard/v1/state',
    );
    expect(adminCallUrl('https://ops.example/a/b//', '/v1/replicas')).toBe(
      'https://ops.example/a/b/v1/replicas',
    );
  });

  it('works without a prefix', () => {
    expect(adminCallUrl('http://127.0.0.1:9090', '/v1/state')).toBe(
      'http://127.0.0.1:9090/v1/state',
    );
    expect(adminCallUrl('http://127.0.0.1:9090/', '/v1/state')).toBe(
      'http://127.0.0.1:9090/v1/state',
    );
  });

  it('keeps the query string of the call', () => {
    expect(adminCallUrl('http://host/switchyard', '/v1/history?limit=2')).toBe(
      'http://host/switchyard/v1/history?limit=2',
    );
    expect(adminCallUrl('http://host/switchyard/', '/v1/canary?wait=all&timeout=5s')).toBe(
      'http://host/switchyard/v1/canary?wait=all&timeout=5s',
    );
  });

  it('keeps percent-encoded path segments as they are', () => {
    expect(adminCallUrl('http://host/sy', '/v1/pools/a%2Fb')).toBe('http://host/sy/v1/pools/a%2Fb');
  });
});

describe('hasUserinfo', () => {
  it('finds user:password or user@ before the host, whether or not the URL parses', () => {
    for (const url of [
      'http://ops:s3cret@127.0.0.1:9090',
      'http://ops:s3cret@127.0.0.1:99999',
      'https://ops@host',
      'http://ops:s3c@ret@host/switchyard',
      'http:ops:s3cret@host',
      'http:\\\\ops:s3cret@host',
      'ops:s3cret@127.0.0.1:9090',
      '  http://ops:s3\tcret@host',
      'http://ops:s3cret@[::1',
    ]) {
      expect({ url, found: hasUserinfo(url) }).toEqual({ url, found: true });
    }
  });

  it('ignores an @ after the authority, and URLs without one', () => {
    for (const url of [
      'http://127.0.0.1:9090',
      'http://[::1]:9090/switchyard',
      'https://ops.example/team@ops/switchyard',
      'http://host:9090/?by=a@b',
      'http://host:9090/#a@b',
      '127.0.0.1:9090/@x',
      'not a url',
    ]) {
      expect({ url, found: hasUserinfo(url) }).toEqual({ url, found: false });
    }
  });
});

describe('redactUserinfo', () => {
  it('hides everything up to the last @ of the authority, in any text', () => {
    expect(redactUserinfo('http://ops:s3cret@127.0.0.1:9090/x')).toBe(
      'http://***@127.0.0.1:9090/x',
    );
    expect(redactUserinfo('at http://ops:s3c@ret@host and https://u@h2/p@q')).toBe(
      'at http://***@host and https://***@h2/p@q',
    );
    expect(redactUserinfo('http://127.0.0.1:9090/a@b')).toBe('http://127.0.0.1:9090/a@b');
  });

  it('is applied to the unreachable message', () => {
    const err = new AdminUnreachableError(
      'http://ops:s3cret@127.0.0.1:1',
      new Error('connect ECONNREFUSED http://ops:s3cret@127.0.0.1:1'),
    );
    expect(err.message).not.toContain('s3cret');
    expect(err.message).toContain('cannot reach the admin API at http://***@127.0.0.1:1');
  });
});
