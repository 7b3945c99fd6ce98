import { ecsFormat } from '@elastic/ecs-pino-format';
import type { LoggerOptions } from 'pino';
import { maskClientSecrets } from './client-secret.js';

// Any run of 12–19 digits, optionally spaced or dashed (in URLs also "%20" or "+"), could be a card
// number, also when glued to letters or underscores ("pay_4111…"), which a word boundary misses.
const PAN_LIKE = /(?:\d(?:[ -]|%20|\+)?){11,18}\d/g;

export function maskCardNumbers(text: string): string {
  return text.replace(PAN_LIKE, '[redacted]');
}

/**
 * ECS-shaped JSON logs. Request bodies are never logged; headers that carry secrets and any
 * card-shaped or bank-account-number field are redacted in case an object holding them is ever logged, and URLs are
 * masked because a careless client may put a card number in a path or query string.
 */
export function loggerOptions(level: string): LoggerOptions {
  return {
    ...ecsFormat(),
    level,
    redact: {
      paths: [
        'req.headers.authorization',
        'headers.authorization',
        'authorization',
        '*.number',
        '*.cvc',
        '*.card',
        'card',
        'cvc',
        'secret',
        '*.secret',
        'client_secret',
        'account_number',
        '*.account_number',
      ],
      censor: '[redacted]',
    },
    serializers: {
      req(request: { method: string; url: string; id: string; ip?: string }) {
        return {
          method: request.method,
          url: maskClientSecrets(maskCardNumbers(request.url)),
          id: request.id,
          ip: request.ip,
        };
      },
      res(reply: { statusCode: number }) {
        return { statusCode: reply.statusCode };
      },
      err(error: Error & { code?: string }) {
        return {
          type: error.name,
          code: error.code,
          message: maskCardNumbers(String(error.message)),
          stack: maskCardNumbers(String(error.stack ?? '')),
        };
      },
    },
  };
}
