import { describe, expect, it } from 'vitest';
import { adminCallUrl } from '../../../src/cli/admin-client.js';

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
