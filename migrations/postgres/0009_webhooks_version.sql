-- A counter per tenant that every change to what fan-out reads of its webhooks raises, in
-- the same transaction: creating, deleting, enabling or disabling one (by the API, the
-- recorder's auto-disable, or an operator's own SQL), or changing its target, secrets,
-- filters or format. It is read with every API token (like `fields_version`), so a node
-- can keep each tenant's webhooks in memory and still see a change made on another node
-- on the next request. A trigger rather than code at each write: no write to `webhooks`
-- can forget it (a `TRUNCATE`, which fires no row trigger, raises every tenant's). The
-- recorder's status columns (last execution, failure streak) are not
-- in the list, so recording attempts does not empty every node's cache.
ALTER TABLE tenants ADD COLUMN webhooks_version BIGINT NOT NULL DEFAULT 0;

CREATE FUNCTION herald_webhooks_changed() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE tenants SET webhooks_version = webhooks_version + 1 WHERE id = OLD.tenant_id;
    ELSE
        UPDATE tenants SET webhooks_version = webhooks_version + 1 WHERE id = NEW.tenant_id;
        IF TG_OP = 'UPDATE' AND OLD.tenant_id <> NEW.tenant_id THEN
            UPDATE tenants SET webhooks_version = webhooks_version + 1 WHERE id = OLD.tenant_id;
        END IF;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER webhooks_version_on_insert_or_delete AFTER INSERT OR DELETE ON webhooks
    FOR EACH ROW EXECUTE FUNCTION herald_webhooks_changed();
CREATE TRIGGER webhooks_version_on_update AFTER UPDATE OF
    id, tenant_id, url, http_verb, format, event_types, project_ids, headers, enabled, ordering,
    secret, previous_secret, previous_secret_until, created_at, updated_at ON webhooks
    FOR EACH ROW EXECUTE FUNCTION herald_webhooks_changed();

CREATE FUNCTION herald_webhooks_truncated() RETURNS trigger LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
    UPDATE tenants SET webhooks_version = webhooks_version + 1;
    RETURN NULL;
END
$$;

CREATE TRIGGER webhooks_version_on_truncate AFTER TRUNCATE ON webhooks
    FOR EACH STATEMENT EXECUTE FUNCTION herald_webhooks_truncated();
