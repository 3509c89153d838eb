-- Bodies shared by an event's deliveries (src/formats/template.rs): fan-out renders an
-- event once per format, with stand-in ids where PPM writes the webhook's and the
-- delivery's (`WebhookId`, `MessageId`), and keeps that one body here. Its deliveries keep
-- `body` NULL and name the format in `body_format`; a delivery's own body is the shared one
-- with its ids written over the stand-ins. A row per delivery then holds a few hundred
-- bytes instead of the whole body, when it is inserted and again when its outcome
-- rewrites it. Rows made before this migration, and test pings, keep their own `body`.
-- A delivery's body is purged (retention) by clearing both columns; a shared body goes
-- when no delivery names it any more.
CREATE TABLE delivery_bodies (
    event_seq        BIGINT NOT NULL,
    format           TEXT   NOT NULL,
    body             TEXT   NOT NULL,
    webhook_standin  TEXT   NOT NULL,
    delivery_standin TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    PRIMARY KEY (event_seq, format)
);
ALTER TABLE deliveries ADD COLUMN body_format TEXT;
