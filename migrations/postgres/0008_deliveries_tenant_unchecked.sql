-- A delivery's tenant is its event's: both rows are written by one statement, and the
-- event's own reference to `tenants` is checked. Checking it again for every delivery ran
-- one lookup of the tenant row per delivery (ten per change on a ten-webhook fan-out),
-- a sizeable share of PostgreSQL's work per delivery. Tenants are never deleted.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_tenant_id_fkey;
