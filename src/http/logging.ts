import { ecsFormat } from '@elastic/ecs-pino-format';
import type { FastifyBaseLogger } from 'fastify';
import type { Bindings, ChildLoggerOptions, LoggerOptions } from 'pino';
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
    hooks: {
      // Messages are masked too; an Error logged without one has its own message as the line's (pino), masked here.
      logMethod(args, write) {
        const [first, second] = args as unknown[];
        const line = args.map((arg: unknown) => (typeof arg === 'string' ? maskCardNumbers(arg) : arg));
        if (first instanceof Error && typeof second !== 'string') line.splice(1, 0, maskCardNumbers(first.message));
        return write.apply(this, line as Parameters<typeof write>);
      },
    },
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
      // The ECS formatter turns a logged Error (`err`, or an Error as the first argument) into `error` before any
      // serializer runs, so `err` above only ever sees what is not an Error: the message and stack are masked here.
      error(error: unknown) {
        if (typeof error !== 'object' || error === null) return maskCardNumbers(String(error));
        const { message, stack_trace } = error as { message?: unknown; stack_trace?: unknown };
        return {
          ...error,
          ...(message !== undefined ? { message: maskCardNumbers(String(message)) } : {}),
          ...(stack_trace !== undefined ? { stack_trace: maskCardNumbers(String(stack_trace)) } : {}),
        };
      },
    },
  };
}

/**
 * A request's logger that becomes a pino child on its first line. fastify makes one child per request, and pino
 * serializes (and redacts) a child's bindings as it is made: about 2% of a retrieve's API time, for a logger that
 * below debug level writes nothing unless the request fails.
 */
class RequestLogger implements FastifyBaseLogger {
  private made: FastifyBaseLogger | undefined;

  constructor(
    private readonly parent: FastifyBaseLogger,
    private readonly bindings: Bindings,
    private readonly options: ChildLoggerOptions,
  ) {}

  private get logger(): FastifyBaseLogger {
    return (this.made ??= this.parent.child(this.bindings, this.options));
  }

  get level(): string {
    return this.made?.level ?? this.options.level ?? this.parent.level;
  }

  set level(level: string) {
    this.logger.level = level;
  }

  fatal(...line: unknown[]) {
    (this.logger.fatal as Write)(...line);
  }
  error(...line: unknown[]) {
    (this.logger.error as Write)(...line);
  }
  warn(...line: unknown[]) {
    (this.logger.warn as Write)(...line);
  }
  info(...line: unknown[]) {
    (this.logger.info as Write)(...line);
  }
  debug(...line: unknown[]) {
    (this.logger.debug as Write)(...line);
  }
  trace(...line: unknown[]) {
    (this.logger.trace as Write)(...line);
  }
  silent(...line: unknown[]) {
    (this.logger.silent as Write)(...line);
  }

  child(bindings: Bindings, options?: ChildLoggerOptions): FastifyBaseLogger {
    return this.logger.child(bindings, options);
  }
}

type Write = (...line: unknown[]) => void;

/** fastify's childLoggerFactory: each request's logger, made lazily (RequestLogger). */
export function requestLoggerFactory(
  logger: FastifyBaseLogger,
  bindings: Bindings,
  options: ChildLoggerOptions,
): FastifyBaseLogger {
  return new RequestLogger(logger, bindings, options);
}
