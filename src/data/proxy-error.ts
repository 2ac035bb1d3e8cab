/**
 * The data plane's own error answers (issue 10): every one is `{"error":{"code","message"}}` with
 * the status of its code in the catalogue, written here and nowhere else: on a ServerResponse
 * (requests) or on a raw socket (connections Node hands over: CONNECT, upgrades, parse errors).
 * The caller counts the returned status in its request tally.
 */
import { STATUS_CODES, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { ERROR_CODES, type ErrorCode } from '../errors.js';

/** The JSON body of an error answer. */
export function proxyErrorBody(code: ErrorCode, message: string): string {
  return JSON.stringify({ error: { code, message } });
}

/**
 * Answers `res` with the error `code` (status from the catalogue) and `headers` (a flat
 * [name, value, ...] list the caller adds, e.g. Set-Cookie or Connection: close). Returns the
 * status to count. If the response already started, the connection is cut instead (the client
 * then sees an incomplete response) and the status of the code is still returned.
 */
export function writeProxyError(
  res: ServerResponse,
  code: ErrorCode,
  message: string,
  headers: string[] = [],
): number {
  const status = ERROR_CODES[code];
  if (res.headersSent) {
    res.destroy();
    return status;
  }
  const body = proxyErrorBody(code, message);
  headers.push(
    'content-type',
    'application/json',
    'content-length',
    String(Buffer.byteLength(body)),
  );
  res.writeHead(status, headers);
  res.end(body);
  return status;
}

/**
 * Answers a raw client socket with the error `code` and closes it (`Connection: close`); `headers`
 * is a flat [name, value, ...] list of extra fields. Returns the status to count. A socket that
 * can no longer be written is destroyed.
 */
export function writeRawProxyError(
  socket: Socket,
  code: ErrorCode,
  message: string,
  headers: readonly string[] = [],
): number {
  const status = ERROR_CODES[code];
  if (!socket.writable || socket.destroyed) {
    socket.destroy();
    return status;
  }
  const body = proxyErrorBody(code, message);
  let head =
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\ncontent-type: application/json\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n`;
  for (let i = 0; i + 1 < headers.length; i += 2)
    head += `${headers[i] as string}: ${headers[i + 1] as string}\r\n`;
  // Node may hand the socket over half-open and without its error listener: a reset while the
  // answer is written must not crash the process, and the socket must not outlive the answer.
  socket.on('error', () => socket.destroy());
  socket.end(`${head}\r\n${body}`, () => socket.destroy());
  return status;
}
