/**
 * Request body reading for the admin API: JSON only, bounded size, never buffered past the limit.
 */
import type { IncomingMessage } from 'node:http';
import { fail } from '../errors.js';

/** Largest accepted request body (SPEC §5). */
export const MAX_BODY_BYTES = 1024 * 1024;

/** True for `application/json` and `application/*+json`, with or without parameters. */
function isJsonContentType(value: string): boolean {
  const type = (value.split(';')[0] ?? '').trim().toLowerCase();
  return type === 'application/json' || /^application\/[a-z0-9.+-]+\+json$/.test(type);
}

/**
 * Refuses (415) a change without `content-type: application/json`, a bodyless one too: a page of
 * another site can send a form or a bodyless POST without a CORS preflight, but not this header
 * (issue 10). The CLI sends it on every change.
 */
export function requireJsonContentType(req: IncomingMessage): void {
  const contentType = req.headers['content-type'];
  if (contentType === undefined) {
    throw fail(
      'UNSUPPORTED_MEDIA_TYPE',
      'content-type: must be application/json, on a bodyless change too (e.g. curl -X POST -H "content-type: application/json")',
    );
  }
  if (!isJsonContentType(contentType)) {
    throw fail(
      'UNSUPPORTED_MEDIA_TYPE',
      `content-type: must be application/json (got ${JSON.stringify(contentType.slice(0, 80))})`,
    );
  }
}

/**
 * Reads and parses a JSON body. The content type must be JSON (requireJsonContentType); an empty
 * body is `{}`. Over `limitBytes` is 413 (the rest is not read); unparsable JSON is 400
 * INVALID_JSON.
 */
export async function readJsonBody(
  req: IncomingMessage,
  limitBytes = MAX_BODY_BYTES,
): Promise<unknown> {
  requireJsonContentType(req);
  const declaredLength = req.headers['content-length'];
  const hasBody =
    req.headers['transfer-encoding'] !== undefined ||
    (declaredLength !== undefined && declaredLength !== '0');
  if (!hasBody) return {};
  if (declaredLength !== undefined && Number(declaredLength) > limitBytes) {
    throw tooLarge(limitBytes);
  }
  const text = await collect(req, limitBytes);
  if (text.trim() === '') return {};
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw fail('INVALID_JSON', `body: not valid JSON (${(err as Error).message})`);
  }
}

function tooLarge(limitBytes: number): Error {
  return fail('BODY_TOO_LARGE', `body: larger than ${limitBytes} bytes`);
}

/**
 * Collects the body as text. Past the limit it stops listening and pauses the stream rather than
 * destroying it, so the 413 answer can still be written; the server then closes the connection.
 */
function collect(req: IncomingMessage, limitBytes: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const cleanup = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
    };
    const onData = (chunk: Buffer): void => {
      received += chunk.length;
      if (received > limitBytes) {
        cleanup();
        req.pause();
        reject(tooLarge(limitBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(Buffer.concat(chunks).toString('utf8'));
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(err);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
  });
}
