import type { FastifyReply, FastifyRequest } from 'fastify';

type Step = (request: FastifyRequest, reply: FastifyReply, payload: unknown) => unknown;

/**
 * A preSerialization step that never waits, as fastify's callback hook: an async hook is a promise and a turn of the
 * microtask queue for every response, and these run on every payment answer.
 */
export function preSerializationStep(step: Step) {
  return (
    request: FastifyRequest,
    reply: FastifyReply,
    payload: unknown,
    done: (error: Error | null, payload?: unknown) => void,
  ): void => {
    let next: unknown;
    try {
      next = step(request, reply, payload);
    } catch (error) {
      done(error as Error);
      return;
    }
    done(null, next);
  };
}
