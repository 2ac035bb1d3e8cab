import { once } from 'node:events';
import net from 'node:net';
import { delay, freePort, spawnChild, type BenchChild } from './child.js';

/** A throw-away redis-server on a free loopback port (never 6379). */
export interface BenchRedis {
  url: string;
  child: BenchChild;
}

async function ping(port: number): Promise<boolean> {
  const socket = net.connect(port, '127.0.0.1');
  try {
    await once(socket, 'connect');
    socket.write('PING\r\n');
    const [data] = (await once(socket, 'data')) as [Buffer];
    return data.toString().startsWith('+PONG');
  } catch {
    return false;
  } finally {
    socket.destroy();
  }
}

/** Starts redis-server without persistence; retries on a port taken in the meantime. */
export async function startRedis(cpu: number | undefined): Promise<BenchRedis> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawnChild({
      name: 'redis-server',
      command: 'redis-server',
      args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      cpu,
    });
    const deadline = Date.now() + 10_000;
    let exited = false;
    void child.exited.then(() => {
      exited = true;
    });
    while (!exited && Date.now() < deadline) {
      if (await ping(port)) return { url: `redis://127.0.0.1:${port}`, child };
      await delay(25);
    }
    await child.close();
    if (attempt >= 3) throw new Error(`redis-server did not start: ${child.output()}`);
  }
}
