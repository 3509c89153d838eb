-- A counter per tenant that every change to its field definitions raises, in the same
-- transaction. It is read with every API token, so a server can keep the definitions in
-- memory and still see a change made by another node (or the CLI) on the next request.
ALTER TABLE tenants ADD COLUMN fields_version BIGINT NOT NULL DEFAULT 0;
