/**
 * Raw HTTP/1.x over node:net for tests that send what no HTTP client would: asterisk-form
 * targets, thousands of header fields, hop-by-hop tricks. Loopback only.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/** One parsed HTTP response. */
export interface RawResponse {
  readonly status: number;
  /** Lower-case names; repeated fields joined with `, `. */
  readonly headers: Record<string, string>;
  readonly body: string;
}

/** Opens a TCP connection to 127.0.0.1:`port`; errors are ignored (the peer may reset). */
export async function rawConnect(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  return socket;
}

/** Parses one response (head and whatever follows it) from `text`. */
export function parseResponse(text: string): RawResponse {
  const split = text.indexOf('\r\n\r\n');
  const head = split === -1 ? text : text.slice(0, split);
  const [statusLine, ...lines] = head.split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    const name = l.slice(0, i).toLowerCase();
    const value = l.slice(i + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  return {
    status: Number(statusLine?.split(' ')[1]),
    headers,
    body: split === -1 ? '' : text.slice(split + 4),
  };
}

/**
 * Sends `text` on a new connection and reads until the server closes it (send requests with
 * `Connection: close`, or that the server must refuse and close); returns the first response.
 */
export async function rawExchange(port: number, text: string | Buffer): Promise<RawResponse> {
  const socket = await rawConnect(port);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = once(socket, 'close');
  socket.write(text);
  await closed;
  return parseResponse(Buffer.concat(chunks).toString('latin1'));
}

/** Resolves with everything received once `pattern` appears in what `socket` has sent. */
export function readUntil(socket: Socket, pattern: string | RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = '';
    const onData = (c: Buffer): void => {
      data += c.toString('latin1');
      if (typeof pattern === 'string' ? data.includes(pattern) : pattern.test(data)) {
        socket.off('data', onData);
        socket.off('close', onClose);
        resolve(data);
      }
    };
    const onClose = (): void => {
      socket.off('data', onData);
      reject(new Error(`connection closed before ${String(pattern)}; got ${JSON.stringify(data)}`));
    };
    socket.on('data', onData);
    socket.once('close', onClose);
  });
}
