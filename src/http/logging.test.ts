import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { loggerOptions, requestLoggerFactory } from './logging.js';

function logger(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString()));
      done();
    },
  });
  const root = pino({ ...loggerOptions(level) }, stream);
  let children = 0;
  const child = root.child;
  root.child = function (this: typeof root, ...args: Parameters<typeof child>) {
    children++;
    return child.apply(this, args);
  } as typeof root.child;
  return { root, lines, children: () => children };
}

describe('request loggers', () => {
  it('make no pino child for a request that logs nothing', () => {
    const { root, children } = logger('info');
    const log = requestLoggerFactory(root, { request_id: 'req_quiet' }, {});
    log.debug('below the level');
    expect(log.level).toBe('info');
    expect(children()).toBe(1);
    const untouched = requestLoggerFactory(root, { request_id: 'req_untouched' }, {});
    expect(untouched.level).toBe('info');
    expect(children()).toBe(1);
  });

  it("write each line with the request's bindings, redacted and masked as the root's", () => {
    const { root, lines, children } = logger('info');
    const log = requestLoggerFactory(root, { request_id: 'req_loud' }, {});
    log.warn({ card: { number: '4242424242424242' } }, 'first');
    log.error(new Error('card 4000000000000002 declined'), 'second');
    expect(children()).toBe(1);
    log.child({ step: 'capture' }).info('third');
    expect(lines.map((line) => [line.request_id, line.message])).toEqual([
      ['req_loud', 'first'],
      ['req_loud', 'second'],
      ['req_loud', 'third'],
    ]);
    expect(lines[2].step).toBe('capture');
    expect(JSON.stringify(lines)).not.toMatch(/4242424242424242|4000000000000002/);
  });

  // The ECS formatter makes an Error into its `error` field before pino's serializers run, which the `err` serializer
  // alone did not cover: an error whose message held a card number was logged with it.
  it('mask card numbers in errors however they are logged', () => {
    const { root, lines } = logger('info');
    const log = requestLoggerFactory(root, { request_id: 'req_failed' }, {});
    log.error({ err: new Error('card 4000000000000002 declined') }, 'request failed');
    log.error(new Error('card 4000 0000 0000 0002 declined'));
    log.warn({ err: 'gateway said 4000000000000002' }, 'not an Error');
    log.warn({ error: 'gateway said 4000-0000-0000-0002' }, 'a string');
    expect(lines).toHaveLength(4);
    const [wrapped, direct] = lines as { error: { type: string; message: string; stack_trace: string } }[];
    expect(wrapped.error).toMatchObject({ type: 'Error', message: 'card [redacted] declined' });
    expect(wrapped.error.stack_trace).toMatch(/^Error: card \[redacted\] declined\n/);
    expect(direct.error.message).toBe('card [redacted] declined');
    expect(JSON.stringify(lines)).not.toMatch(/4000.?0000.?0000.?0002/);
  });

  it("take a route's own level, and a level set later", () => {
    const { root, lines } = logger('info');
    const log = requestLoggerFactory(root, { request_id: 'req_debug' }, { level: 'debug' });
    expect(log.level).toBe('debug');
    log.debug('shown at debug');
    log.level = 'error';
    log.warn('hidden now');
    expect(lines.map((line) => line.message)).toEqual(['shown at debug']);
  });
});
