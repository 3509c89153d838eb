-- Tenants, users, API tokens and webhooks. Times are epoch milliseconds (BIGINT) so both
-- backends store and compare them the same way.
CREATE TABLE tenants (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    slug        TEXT    NOT NULL UNIQUE,
    created_at  BIGINT  NOT NULL
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   BIGINT  NOT NULL REFERENCES tenants(id),
    uuid        TEXT    NOT NULL UNIQUE,
    account_id  TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    initials    TEXT    NOT NULL,
    email       TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    UNIQUE (tenant_id, account_id)
);

CREATE TABLE api_tokens (
    id          TEXT    PRIMARY KEY,
    tenant_id   BIGINT  NOT NULL REFERENCES tenants(id),
    user_id     BIGINT  NOT NULL REFERENCES users(id),
    name        TEXT    NOT NULL,
    scopes      TEXT    NOT NULL,
    secret_hash TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    revoked_at  BIGINT
);

CREATE TABLE webhooks (
    id                    TEXT    PRIMARY KEY,
    tenant_id             BIGINT  NOT NULL REFERENCES tenants(id),
    name                  TEXT    NOT NULL,
    description           TEXT    NOT NULL,
    url                   TEXT    NOT NULL,
    http_verb             TEXT    NOT NULL,
    format                TEXT    NOT NULL,
    event_types           TEXT    NOT NULL,
    project_ids           TEXT    NOT NULL,
    headers               TEXT    NOT NULL,
    enabled               BOOLEAN NOT NULL,
    ordering              TEXT    NOT NULL,
    secret                TEXT    NOT NULL,
    previous_secret       TEXT,
    previous_secret_until BIGINT,
    created_at            BIGINT  NOT NULL,
    updated_at            BIGINT  NOT NULL,
    last_execution_at     BIGINT,
    last_status_code      BIGINT,
    last_error            TEXT,
    disabled_reason       TEXT,
    consecutive_failures  BIGINT  NOT NULL DEFAULT 0,
    failing_since         BIGINT
);
CREATE INDEX webhooks_by_tenant ON webhooks (tenant_id, created_at);
