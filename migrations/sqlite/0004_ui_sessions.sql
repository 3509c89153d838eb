-- Admin UI sessions, stored server-side so signing out (or revoking the API token the
-- session was opened with) ends the session at once. Only a SHA-256 hash of the session id
-- is stored: a copy of this table cannot be replayed as cookies.
CREATE TABLE ui_sessions (
    id_hash     TEXT    PRIMARY KEY,
    tenant_id   BIGINT  NOT NULL REFERENCES tenants(id),
    token_id    TEXT    NOT NULL REFERENCES api_tokens(id),
    csrf_token  TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    expires_at  BIGINT  NOT NULL
);
CREATE INDEX ui_sessions_by_expiry ON ui_sessions (expires_at);
