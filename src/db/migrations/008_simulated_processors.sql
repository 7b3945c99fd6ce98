-- The simulated processors' own records: what a real processor keeps on its side, written only by
-- the simulator. One row per call it acted on, keyed by the idempotency key we sent, so a replay
-- of the key returns the first result and acts no second time. These rows, not ours, are what
-- proves that a payment was captured once, and what the processors' settlement reports are built
-- from. No card number: the last 4 digits at most, as a processor shows them to a merchant.
CREATE TABLE sim_processor_calls (
  processor text NOT NULL,
  idempotency_key text NOT NULL,
  operation text NOT NULL CHECK (operation IN ('authorize', 'capture', 'void', 'refund')),
  -- The merchant account (our tenant and mode) and the merchant's order reference (our payment id).
  merchant_id text NOT NULL,
  livemode boolean NOT NULL,
  order_id text NOT NULL,
  amount bigint NOT NULL,
  currency text NOT NULL,
  -- An authorization that captured at once (automatic capture).
  capture boolean NOT NULL DEFAULT false,
  card_last4 text CHECK (card_last4 ~ '^[0-9]{4}$'),
  status text NOT NULL CHECK (status IN ('succeeded', 'declined', 'requires_action', 'error')),
  -- The reference this call answered with, and the authorization it made or acted on.
  reference text,
  authorization_reference text,
  code text,
  decline_code text,
  message text,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (processor, idempotency_key)
);
CREATE INDEX sim_processor_calls_settled ON sim_processor_calls (processor, created_at) WHERE status = 'succeeded';
CREATE INDEX sim_processor_calls_order ON sim_processor_calls (order_id);

-- Settlement reports came from our own tables; they now come from the processors' records above.
DROP FUNCTION IF EXISTS worker_processor_settled(text, timestamptz, timestamptz, text, text, text, text);
