-- Deliveries (one event for one webhook, body rendered once) and their attempt log.
-- `seq` is the paging cursor; `id` is the public id (= `webhook-id` header = PPM MessageId).
-- A delivery is `pending` until it succeeds, fails for good or is cancelled (its webhook was
-- deleted). While a worker holds it, `lease_token`/`lease_until` say who and until when; a
-- lease that expires (its node died) makes the row claimable again.
CREATE TABLE deliveries (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    tenant_id        BIGINT  NOT NULL REFERENCES tenants(id),
    webhook_id       TEXT    NOT NULL,
    event_id         TEXT    NOT NULL,
    event_seq        BIGINT  NOT NULL,
    event_type       TEXT    NOT NULL,
    entity_key       TEXT,
    body             TEXT,
    headers          TEXT    NOT NULL,
    status           TEXT    NOT NULL,
    attempts         BIGINT  NOT NULL DEFAULT 0,
    tries            BIGINT  NOT NULL DEFAULT 0,
    next_attempt_at  BIGINT  NOT NULL,
    lease_token      TEXT,
    lease_until      BIGINT,
    last_status_code BIGINT,
    last_error       TEXT,
    created_at       BIGINT  NOT NULL,
    updated_at       BIGINT  NOT NULL,
    completed_at     BIGINT
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_by_webhook ON deliveries (webhook_id, seq);
CREATE INDEX deliveries_ordering ON deliveries (webhook_id, entity_key, event_seq)
    WHERE status = 'pending' AND entity_key IS NOT NULL;

CREATE TABLE delivery_attempts (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    delivery_id        TEXT    NOT NULL,
    number             BIGINT  NOT NULL,
    started_at         BIGINT  NOT NULL,
    duration_ms        BIGINT  NOT NULL,
    request_headers    TEXT    NOT NULL,
    status_code        BIGINT,
    response_headers   TEXT,
    response_body      BLOB,
    response_truncated BOOLEAN NOT NULL,
    error_kind         TEXT,
    error              TEXT,
    outcome            TEXT    NOT NULL
);
CREATE INDEX delivery_attempts_by_delivery ON delivery_attempts (delivery_id, number);
CREATE INDEX delivery_attempts_by_time ON delivery_attempts (started_at);
