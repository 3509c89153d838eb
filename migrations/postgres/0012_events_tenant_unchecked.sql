-- An event's tenant is the change's: the API resolved it from the caller's token, in the
-- same request. Checking the reference for every event locked the tenant's row (`FOR KEY
-- SHARE`) in every change's transaction; a tenant's changes run in parallel, so the row
-- was nearly always locked by several at once, and each new locker made PostgreSQL write a
-- multixact (its members, a WAL record, the row's lock bits) that every later reader of
-- the row (each request's token read joins it) had to look up. Tenants are never deleted
-- (as for deliveries, migration 0008).
ALTER TABLE events DROP CONSTRAINT events_tenant_id_fkey;
