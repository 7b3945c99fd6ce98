/**
 * The baseline: a bare fastify process with no database, auth or validation, answering the same
 * routes the benchmark drives on the API. POST echoes the JSON body; GET answers a fixed
 * payment-shaped document of about the API's size. Run as its own process by bench/run.ts.
 */
import Fastify from 'fastify';

const port = Number(process.env.PORT ?? 4101);
const app = Fastify({ logger: false });

const samplePayment = {
  object: 'payment',
  amount: 2000,
  amount_capturable: 0,
  amount_received: 2000,
  amount_refunded: 0,
  currency: 'usd',
  status: 'succeeded',
  capture_method: 'automatic',
  payment_method: 'pm_01kb0000000000000000000000',
  customer: null,
  description: null,
  statement_descriptor: null,
  metadata: {},
  last_payment_error: null,
  next_action: null,
  processor: 'sim_alpha',
  authorization_expires_at: null,
  canceled_at: null,
  cancellation_reason: null,
  attempts: [
    {
      id: 'pat_01kb0000000000000000000000',
      operation: 'authorize',
      processor: 'sim_alpha',
      status: 'succeeded',
      amount: 2000,
      error_code: null,
      decline_code: null,
      created: 1764115200,
    },
  ],
  created: 1764115200,
  livemode: false,
};

app.post('/v1/payments', async (request) => request.body);
app.get('/v1/payments/:id', async (request) => ({ id: (request.params as { id: string }).id, ...samplePayment }));
app.get('/ready', async () => ({ status: 'ready' }));

await app.listen({ port, host: '127.0.0.1' });
process.stdout.write(`bare fastify listening on ${port}\n`);

const stop = async () => {
  await app.close();
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
