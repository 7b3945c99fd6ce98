import type { Config } from '../../config.js';
import type { Connector, ConnectorOutcome } from './connector.js';
import { SimulatedProcessor } from './simulated.js';

export interface RoutedAttempt {
  processor: string;
  outcome: ConnectorOutcome;
}

/**
 * Picks processors in the tenant's order and fails over to the next one when a processor errors
 * (not when it declines: a decline is the issuer's answer and would be the same elsewhere).
 */
export class ConnectorRouter {
  private readonly connectors = new Map<string, Connector>();

  constructor(connectors: Connector[]) {
    for (const connector of connectors) this.connectors.set(connector.name, connector);
  }

  static simulated(config: Pick<Config, 'processors'>): ConnectorRouter {
    return new ConnectorRouter([
      new SimulatedProcessor('sim_alpha', { ...config.processors.sim_alpha, failingCards: ['4000000000000119'] }),
      new SimulatedProcessor('sim_beta', { ...config.processors.sim_beta, failingCards: [] }),
    ]);
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
   * Calls `call` on each processor in order until one does not error. `attemptIds` supplies the
   * id for each attempt so the caller can resume a crashed attempt with the same id.
   */
  async withFailover(
    order: string[],
    newAttemptId: (index: number) => string,
    call: (connector: Connector, attemptId: string) => Promise<ConnectorOutcome>,
  ): Promise<Array<RoutedAttempt & { attemptId: string }>> {
    const attempts: Array<RoutedAttempt & { attemptId: string }> = [];
    for (const [index, name] of order.entries()) {
      const attemptId = newAttemptId(index);
      let outcome: ConnectorOutcome;
      try {
        outcome = await call(this.get(name), attemptId);
      } catch (error) {
        outcome = { status: 'error', code: 'processing_error', message: `${name} failed: ${(error as Error).message}` };
      }
      attempts.push({ processor: name, outcome, attemptId });
      if (outcome.status !== 'error') break;
    }
    return attempts;
  }
}
