-- Tracker data and the event log (the outbox). Entities share one table: their typed
-- attributes live in `data` (JSON), validated by the domain layer before every write.
CREATE TABLE fields (
    tenant_id   BIGINT  NOT NULL REFERENCES tenants(id),
    id          BIGINT  NOT NULL,
    name        TEXT    NOT NULL,
    name_key    TEXT    NOT NULL,
    type        TEXT    NOT NULL,
    options     TEXT    NOT NULL,
    formula     TEXT,
    system      BOOLEAN NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX fields_by_name ON fields (tenant_id, name_key);

CREATE TABLE entities (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    tenant_id   BIGINT  NOT NULL REFERENCES tenants(id),
    kind        TEXT    NOT NULL,
    uuid        TEXT    NOT NULL UNIQUE,
    parent_kind TEXT,
    parent_id   BIGINT,
    project_id  BIGINT,
    key         TEXT,
    position    DOUBLE PRECISION,
    version     BIGINT  NOT NULL DEFAULT 0,
    data        TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);
CREATE INDEX entities_by_kind ON entities (tenant_id, kind, id);
CREATE INDEX entities_by_parent ON entities (parent_id, kind, position);
CREATE UNIQUE INDEX projects_by_key ON entities (tenant_id, key) WHERE kind = 'project';

CREATE TABLE events (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT    NOT NULL UNIQUE,
    tenant_id       BIGINT  NOT NULL REFERENCES tenants(id),
    type            TEXT    NOT NULL,
    entity_kind     TEXT    NOT NULL,
    entity_id       BIGINT  NOT NULL,
    project_id      BIGINT,
    occurred_at     BIGINT  NOT NULL,
    idempotency_key TEXT,
    data            TEXT    NOT NULL
);
CREATE INDEX events_by_tenant ON events (tenant_id, seq);
CREATE UNIQUE INDEX events_by_idempotency_key ON events (tenant_id, idempotency_key)
    WHERE idempotency_key IS NOT NULL;

-- Version counters for projects Herald only knows through the ingest API.
CREATE TABLE external_project_versions (
    tenant_id   BIGINT NOT NULL REFERENCES tenants(id),
    project_id  BIGINT NOT NULL,
    version     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, project_id)
);
