-- A counter per tenant that every change to what fan-out reads of its webhooks raises, in
-- the same transaction (see the PostgreSQL migration of the same name). It is read with
-- every API token. SQLite's own fan-out does not need it (its one writer forgets its
-- cached webhooks on every webhook write, `store/subscriber_cache.rs`); it is kept here
-- too so both backends hold the same data and read tokens with the same statement.
ALTER TABLE tenants ADD COLUMN webhooks_version BIGINT NOT NULL DEFAULT 0;

CREATE TRIGGER webhooks_version_on_insert AFTER INSERT ON webhooks
BEGIN
    UPDATE tenants SET webhooks_version = webhooks_version + 1 WHERE id = NEW.tenant_id;
END;
CREATE TRIGGER webhooks_version_on_delete AFTER DELETE ON webhooks
BEGIN
    UPDATE tenants SET webhooks_version = webhooks_version + 1 WHERE id = OLD.tenant_id;
END;
CREATE TRIGGER webhooks_version_on_update AFTER UPDATE OF
    id, tenant_id, url, http_verb, format, event_types, project_ids, headers, enabled, ordering,
    secret, previous_secret, previous_secret_until, created_at, updated_at ON webhooks
BEGIN
    UPDATE tenants SET webhooks_version = webhooks_version + 1 WHERE id IN (OLD.tenant_id, NEW.tenant_id);
END;
