import type { Config } from '../../config.js';
import type { Sql } from '../../db/index.js';
import type { CallOutcome, Connector, ConnectorOutcome } from './connector.js';
import { SimulatedProcessorRecords } from './simulated-records.js';
import { SimulatedProcessor } from './simulated.js';

/** The processor calls whose outcome can be unknown: those that move money or an authorization. */
export type ProcessorOperation = 'authorize' | 'capture' | 'void' | 'refund';

export interface RoutedAttempt {
  processor: string;
  attemptId: string;
  outcome: CallOutcome;
}

/**
 * Picks processors in the tenant's order and fails over to the next one when a processor errors
 * (not when it declines: a decline is the issuer's answer and would be the same elsewhere, and
 * never when the outcome is unknown: the first processor may have acted).
 */
export class ConnectorRouter {
  private readonly connectors = new Map<string, Connector>();

  constructor(
    connectors: Connector[],
    private readonly timeoutMs: number,
    /** Told of every call whose outcome is unknown (a timeout or a throw), to count them. */
    private readonly onUnknown: (processor: string, operation: ProcessorOperation) => void = () => {},
  ) {
    for (const connector of connectors) this.connectors.set(connector.name, connector);
  }

  static simulated(
    config: Pick<Config, 'processors' | 'processorTimeoutMs' | 'batchMaxConcurrency' | 'batchMaxSize'>,
    sql: Sql,
    onUnknown?: (processor: string, operation: ProcessorOperation) => void,
  ): ConnectorRouter {
    const records = new SimulatedProcessorRecords(sql, {
      maxConcurrency: config.batchMaxConcurrency,
      maxSize: config.batchMaxSize,
    });
    return new ConnectorRouter(
      [
        new SimulatedProcessor(
          'sim_alpha',
          { ...config.processors.sim_alpha, failingCards: ['4000000000000119'] },
          records,
        ),
        new SimulatedProcessor('sim_beta', { ...config.processors.sim_beta, failingCards: [] }, records),
      ],
      config.processorTimeoutMs,
      onUnknown,
    );
  }

  get(name: string): Connector {
    const connector = this.connectors.get(name);
    if (!connector) throw new Error(`unknown processor ${name}`);
    return connector;
  }

  names(): string[] {
    return [...this.connectors.keys()];
  }

  /**
   * One processor call bounded by the processor timeout. A call that throws or does not answer in
   * time has an unknown outcome (the request may have reached the processor and been acted on),
   * which the caller must keep pending and replay with the same idempotency key.
   */
  async call(
    processor: string,
    operation: ProcessorOperation,
    run: (connector: Connector) => Promise<ConnectorOutcome>,
  ): Promise<CallOutcome> {
    const outcome = await this.callOnce(processor, run);
    if (outcome.status === 'unknown') this.onUnknown(processor, operation);
    return outcome;
  }

  private async callOnce(
    processor: string,
    run: (connector: Connector) => Promise<ConnectorOutcome>,
  ): Promise<CallOutcome> {
    const connector = this.get(processor);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<CallOutcome>((resolve) => {
      timer = setTimeout(
        () => resolve({ status: 'unknown', message: `${processor} did not answer within ${this.timeoutMs} ms` }),
        this.timeoutMs,
      );
    });
    try {
      return await Promise.race([
        Promise.resolve()
          .then(() => run(connector))
          .catch((error: unknown): CallOutcome => ({
            status: 'unknown',
            message: `${processor} gave no answer: ${(error as Error).message}`,
          })),
        timeout,
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Authorizes with the processors of `order` in turn (only an authorization fails over: a capture,
   * void or refund belongs to the processor that authorized), starting with the first attempt, which
   * the caller has recorded as pending. After a definite processor error, `failedOver` must record
   * that error and the next processor's attempt (pending) before the call is made, and return the
   * new attempt's id: a crash at any point leaves a pending attempt to replay, never a call nobody
   * knows of.
   * Stops at the first answer that is not an error, or at an unknown outcome.
   */
  async withFailover(
    order: string[],
    firstAttemptId: string,
    call: (connector: Connector, attemptId: string) => Promise<ConnectorOutcome>,
    failedOver: (
      failed: { processor: string; attemptId: string; outcome: Extract<ConnectorOutcome, { status: 'error' }> },
      nextProcessor: string,
    ) => Promise<string>,
  ): Promise<RoutedAttempt> {
    let attemptId = firstAttemptId;
    for (const [index, processor] of order.entries()) {
      const outcome = await this.call(processor, 'authorize', (connector) => call(connector, attemptId));
      if (outcome.status !== 'error' || index === order.length - 1) return { processor, attemptId, outcome };
      attemptId = await failedOver({ processor, attemptId, outcome }, order[index + 1]);
    }
    throw new Error('no processor to route to');
  }
}
