-- Fraud blocks and block-list hits open compliance cases in the transaction that records the payment's
-- outcome. One case per subject (the customer, else the card) and UTC day gathers that day's alerts:
-- alert_key names it, and only while the case is still being worked (open or investigating) does a
-- new alert join it; once filed or dismissed, the subject's next alert opens a new case.
ALTER TABLE cases ADD COLUMN alert_key text;
CREATE UNIQUE INDEX cases_open_alert ON cases (tenant_id, livemode, alert_key)
  WHERE alert_key IS NOT NULL AND status IN ('open', 'investigating');
