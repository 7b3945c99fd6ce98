-- Issue 14: a payment's row is written twice within milliseconds (the insert before the processor is called, the
-- update with its outcome), and the update is HOT (no entry in any of the table's indexes) only if the new version
-- fits on the row's page. At fillfactor 70 a page's inserts left room for fewer than half of their updates: 40-49%
-- were HOT (test/payment-hot-update.test.ts, the bench's pg_stat_user_tables), the rest wrote an entry in every index
-- of payments. At 50, 87-88% are HOT; at 40 all would be, for a table two and a half times its packed size.
-- Pages written before this keep their fill; new ones follow it.
ALTER TABLE payments SET (fillfactor = 50);
