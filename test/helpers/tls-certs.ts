/**
 * A throwaway CA and a server certificate for 127.0.0.1/localhost, made with the real `openssl`,
 * for TLS-only redis-servers (startRedisServer's `tls`) and the clients that must trust them.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** PEM files of a throwaway CA and a server certificate for 127.0.0.1 (createTestCertificates). */
export interface TlsFiles {
  readonly caFile: string;
  readonly certFile: string;
  readonly keyFile: string;
}

/** Thrown when TLS cannot be tested here: redis-server built without TLS, or no openssl. */
export class TlsUnavailableError extends Error {
  override readonly name = 'TlsUnavailableError';
}

/** Throwaway CA and server certificate (with its key) in a temp dir; close() removes them. */
export interface TestCertificates extends TlsFiles {
  close(): Promise<void>;
}

/**
 * Makes a CA and a server certificate for 127.0.0.1/localhost (P-256, valid 2 days) with the
 * real `openssl`. Throws TlsUnavailableError when openssl is missing.
 */
export async function createTestCertificates(): Promise<TestCertificates> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-tls-'));
  const file = (name: string): string => join(dir, name);
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  try {
    await writeFile(file('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
    await openssl([
      'req',
      '-x509',
      ...ec,
      '-keyout',
      file('ca.key'),
      '-out',
      file('ca.crt'),
      '-days',
      '2',
      '-subj',
      '/CN=switchyard-test-ca',
    ]);
    await openssl([
      'req',
      ...ec,
      '-keyout',
      file('server.key'),
      '-out',
      file('server.csr'),
      '-subj',
      '/CN=localhost',
    ]);
    await openssl([
      'x509',
      '-req',
      '-in',
      file('server.csr'),
      '-CA',
      file('ca.crt'),
      '-CAkey',
      file('ca.key'),
      '-CAcreateserial',
      '-out',
      file('server.crt'),
      '-days',
      '2',
      '-extfile',
      file('ext.cnf'),
    ]);
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    caFile: file('ca.crt'),
    certFile: file('server.crt'),
    keyFile: file('server.key'),
    close: () => rm(dir, { recursive: true, force: true }),
  };
}

function openssl(args: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('openssl', args, (err, _stdout, stderr) => {
      if (err === null) resolve();
      else if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        reject(new TlsUnavailableError('openssl not found: cannot make test certificates'));
      } else reject(new Error(`openssl ${args[0]} failed: ${stderr}`, { cause: err }));
    });
  });
}
