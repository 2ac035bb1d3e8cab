/** ownListenerOf (issue 10 item 10): which endpoint URLs reach this replica's own listeners. */
import { networkInterfaces } from 'node:os';
import { describe, expect, it } from 'vitest';
import { ownListenerOf, type OwnListener } from '../../../src/admin/own-listeners.js';

const name = (endpoint: string, listeners: OwnListener[]): string | null =>
  ownListenerOf(endpoint, listeners)?.name ?? null;

describe('ownListenerOf', () => {
  it('a loopback listener: its address, localhost and 0.0.0.0 on its port; not other ports or hosts', () => {
    const listeners = [
      { name: 'proxy', host: '127.0.0.1', port: 8080 },
      { name: 'admin', host: '127.0.0.1', port: 9090 },
    ];
    expect(name('http://127.0.0.1:8080', listeners)).toBe('proxy');
    expect(name('http://LOCALHOST:9090/x', listeners)).toBe('admin');
    expect(name('http://0.0.0.0:8080', listeners)).toBe('proxy');
    expect(name('http://127.1:8080', listeners)).toBe('proxy');
    expect(name('http://127.0.0.1:8081', listeners)).toBeNull();
    // Another loopback address is another socket: an upstream may listen there.
    expect(name('http://127.0.0.2:8080', listeners)).toBeNull();
    expect(name('http://[::1]:8080', listeners)).toBeNull();
    expect(name('http://10.0.0.5:8080', listeners)).toBeNull();
    expect(name('not a url', listeners)).toBeNull();
  });

  it('default ports: http 80, https 443', () => {
    const listeners = [
      { name: 'proxy', host: '0.0.0.0', port: 80 },
      { name: 'admin', host: '127.0.0.1', port: 443 },
    ];
    expect(name('http://127.0.0.1', listeners)).toBe('proxy');
    expect(name('https://localhost/', listeners)).toBe('admin');
  });

  it('a listener on all interfaces: loopback and every address of this machine on its port', () => {
    const any4 = [{ name: 'proxy', host: '0.0.0.0', port: 8080 }];
    const any6 = [{ name: 'proxy', host: '::', port: 8080 }];
    const own = Object.values(networkInterfaces())
      .flatMap((list) => list ?? [])
      .find((i) => i.family === 'IPv4' && !i.internal)?.address;
    for (const url of ['http://127.0.0.1:8080', 'http://localhost:8080', 'http://0.0.0.0:8080']) {
      expect(name(url, any4)).toBe('proxy');
      expect(name(url, any6)).toBe('proxy');
    }
    if (own !== undefined) expect(name(`http://${own}:8080`, any4)).toBe('proxy');
    // An IPv4 wildcard takes no IPv6 connections; `::` takes both.
    expect(name('http://[::1]:8080', any4)).toBeNull();
    expect(name('http://[::1]:8080', any6)).toBe('proxy');
    expect(name('http://192.0.2.10:8080', any4)).toBeNull();
  });

  it('a listener on one address: that address only', () => {
    const listeners = [{ name: 'proxy', host: '192.0.2.10', port: 8080 }];
    expect(name('http://192.0.2.10:8080', listeners)).toBe('proxy');
    expect(name('http://127.0.0.1:8080', listeners)).toBeNull();
    expect(name('http://localhost:8080', listeners)).toBeNull();
  });
});
