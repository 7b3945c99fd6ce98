import { maxHeaderSize, STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { ConnectionError, FastifyInstance } from 'fastify';
import { newId } from '../lib/ids.js';
import { ApiError } from './errors.js';

/**
 * What Node's HTTP parser refused, as our error. These requests never become fastify requests
 * (no hook, no route, no reply), so without this the client got fastify's own `{"error": "Bad
 * Request", "statusCode": 400}` shape, or a closed socket.
 */
function parserError(code: string | undefined, rawPacket: Buffer | undefined): ApiError {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return new ApiError(
        'invalid_request_error',
        'request_header_fields_too_large',
        `The request line and headers are too large (the URL counts with them): at most ${maxHeaderSize / 1024} KB.`,
        null,
        431,
      );
    // Node's requestTimeout and headersTimeout both end here.
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new ApiError(
        'invalid_request_error',
        'request_timeout',
        'The request was not received completely in time.',
        null,
        408,
      );
    case 'HPE_INVALID_METHOD':
      // The parser says "invalid method" for any first token it does not know, binary noise
      // included: only a word is a method we do not support.
      if (!/^[A-Za-z]+ /.test(rawPacket?.subarray(0, 32).toString('latin1') ?? '')) break;
      return new ApiError(
        'invalid_request_error',
        'method_not_allowed',
        'This HTTP method is not supported: use GET or POST.',
        null,
        405,
      );
  }
  return ApiError.invalid('invalid_request', 'The request is not valid HTTP/1.1.');
}

/** Writes a complete HTTP/1.1 response carrying the error envelope, then closes the connection. */
export function writeRawError(socket: Socket, error: ApiError): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const requestId = newId('req');
  const body = JSON.stringify({ error: error.toBody(requestId) });
  socket.end(
    `HTTP/1.1 ${error.statusCode} ${STATUS_CODES[error.statusCode]}\r\n` +
      'content-type: application/json; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `request-id: ${requestId}\r\n` +
      `${error.statusCode === 405 ? 'allow: GET, POST\r\n' : ''}` +
      'connection: close\r\n\r\n' +
      body,
  );
}

/** fastify's `clientErrorHandler`: a request Node could not parse still gets the envelope. */
export function answerClientError(this: FastifyInstance, error: ConnectionError, socket: Socket): void {
  // A reset connection has nobody left to answer.
  if (error.code === 'ECONNRESET' || socket.destroyed) return;
  this.log.debug({ err: error }, 'client error');
  // fastify types rawPacket as JSON; Node hands the bytes it could not parse as a Buffer.
  const rawPacket: unknown = error.rawPacket;
  writeRawError(socket, parserError(error.code, Buffer.isBuffer(rawPacket) ? rawPacket : undefined));
}

/**
 * `CONNECT` is parsed but never routed: without a listener Node drops the connection unanswered.
 * We are no proxy, so it gets the same 405 as any method we do not serve.
 */
export function refuseConnect(_request: unknown, socket: Socket): void {
  writeRawError(
    socket,
    new ApiError(
      'invalid_request_error',
      'method_not_allowed',
      'This HTTP method is not supported: use GET or POST.',
      null,
      405,
    ),
  );
}
