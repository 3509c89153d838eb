-- PostgreSQL only: the generation of the webhooks table as a whole. Every webhook change,
-- on any node, raises it in its own transaction; a node keeps each tenant's enabled
-- webhooks in memory under the generation it read them with, and a change writes its event
-- and deliveries only while the generation is still that one (see
-- src/store/subscriber_cache.rs). SQLite needs none: one process owns its file.
CREATE TABLE webhook_generation (
    id INT    PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);
INSERT INTO webhook_generation (id, n) VALUES (1, 0);
