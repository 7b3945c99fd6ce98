-- API versions (src/modules/versions/versions.ts). Tenants and events that existed before versions were introduced
-- are in the first one; new tenants are pinned to the latest at creation, and new events record the version their
-- object was written in (the code always writes the latest).
ALTER TABLE tenants ADD COLUMN api_version text NOT NULL DEFAULT '2026-11-01';
ALTER TABLE events ADD COLUMN api_version text NOT NULL DEFAULT '2026-11-01';
