import { accessSync, constants } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { canConnect, freePort, startNodeChild, startProcess, type BenchChild } from './child.js';

/** A proxy we compare against, with the config the bench generated for it. */
export interface BenchPeer {
  name: string;
  url: string;
  child: BenchChild;
  close(): Promise<void>;
}

/** Absolute path of `command` when it is an executable on PATH. */
export function findOnPath(command: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    const candidate = path.join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

function hostPort(url: string): string {
  const u = new URL(url);
  return `${u.hostname}:${u.port}`;
}

/** node-http-proxy with a keep-alive agent: the proxy most Node users reach for first. */
export async function startHttpProxyBaseline(
  upstreamUrl: string,
  cpu: number | undefined,
): Promise<BenchPeer> {
  const script = fileURLToPath(new URL('../forwarding-core/proxy-http-proxy.js', import.meta.url));
  const { child, port } = await startNodeChild({
    name: 'node-http-proxy',
    script,
    args: [upstreamUrl],
    cpu,
  });
  return {
    name: 'node-http-proxy',
    url: `http://127.0.0.1:${port}`,
    child,
    close: () => child.close(),
  };
}

/**
 * nginx: `workers` worker processes (default 1; `auto` = its own count of cores), upstream
 * keep-alive, access log off, X-Forwarded-For set like ours.
 */
export function nginxConfig(
  dir: string,
  port: number,
  upstreamUrl: string,
  workers: number | 'auto' = 1,
): string {
  const asRoot = process.getuid?.() === 0 ? 'user root;\n' : '';
  return `${asRoot}worker_processes ${workers};
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  keepalive_timeout 65s;
  keepalive_requests 1000000;
  upstream up {
    server ${hostPort(upstreamUrl)};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://up;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`;
}

/** haproxy: one thread, server connection reuse, X-Forwarded-For set like ours. */
export function haproxyConfig(port: number, upstreamUrl: string): string {
  return `global
  nbthread 1
  maxconn 2000
defaults
  mode http
  timeout connect 5s
  timeout client 65s
  timeout server 65s
  option http-keep-alive
  option forwardfor
  http-reuse always
frontend fe
  bind 127.0.0.1:${port}
  default_backend be
backend be
  server s1 ${hostPort(upstreamUrl)}
`;
}

async function startConfigured(
  name: string,
  configure: (dir: string, port: number) => Promise<{ command: string; args: string[] }>,
  cpu: number | undefined,
): Promise<BenchPeer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `switchyard-bench-${name}-`));
  try {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const { command, args } = await configure(dir, port);
      try {
        const child = await startProcess({
          name,
          command,
          args,
          cpu,
          probe: () => canConnect(port),
        });
        return {
          name,
          url: `http://127.0.0.1:${port}`,
          child,
          close: async () => {
            await child.close();
            await rm(dir, { recursive: true, force: true });
          },
        };
      } catch (err) {
        if (attempt >= 3) throw err;
      }
    }
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/** Starts nginx with a generated config, or returns undefined when nginx is not on PATH. */
export async function startNginx(
  upstreamUrl: string,
  cpu: number | undefined,
  workers: number | 'auto' = 1,
): Promise<BenchPeer | undefined> {
  const nginx = findOnPath('nginx');
  if (nginx === undefined) return undefined;
  return startConfigured(
    'nginx',
    async (dir, port) => {
      await writeFile(path.join(dir, 'nginx.conf'), nginxConfig(dir, port, upstreamUrl, workers));
      return {
        command: nginx,
        args: ['-p', dir, '-e', path.join(dir, 'error.log'), '-c', path.join(dir, 'nginx.conf')],
      };
    },
    cpu,
  );
}

/** Starts haproxy with a generated config, or returns undefined when haproxy is not on PATH. */
export async function startHaproxy(
  upstreamUrl: string,
  cpu: number | undefined,
): Promise<BenchPeer | undefined> {
  const haproxy = findOnPath('haproxy');
  if (haproxy === undefined) return undefined;
  return startConfigured(
    'haproxy',
    async (dir, port) => {
      const file = path.join(dir, 'haproxy.cfg');
      await writeFile(file, haproxyConfig(port, upstreamUrl));
      return { command: haproxy, args: ['-db', '-f', file] };
    },
    cpu,
  );
}
