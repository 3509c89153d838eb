-- Less for PostgreSQL to write per delivery (measured with pg_walinspect on the fan-out
-- bench, BENCHMARKS.md):
--
-- A delivery row is written twice: inserted by fan-out, then rewritten by its outcome a
-- few milliseconds later. The rewrite cannot be a HOT update (it changes columns the
-- claim indexes read), and with full pages its new version went to another page: two
-- pages pinned and locked, a lock record written to the WAL for the old version, and the
-- whole new row logged. Pages left half empty let the new version stay on its row's page,
-- where PostgreSQL logs only the bytes that changed. New pages only; existing ones fill
-- as they are rewritten.
ALTER TABLE deliveries SET (fillfactor = 50);

-- The attempt log kept three indexes for two reads: the attempts of one delivery (by
-- `delivery_id`, in `number` order), and retention's pass over old attempts (by
-- `started_at`). The first becomes the primary key (with `id`, which alone was the
-- primary key but is never looked up, to keep it unique); the second a BRIN index:
-- attempts are written in time order, so a block range's minimum and maximum find them,
-- at almost no cost per row written.
ALTER TABLE delivery_attempts DROP CONSTRAINT delivery_attempts_pkey;
DROP INDEX delivery_attempts_by_delivery;
ALTER TABLE delivery_attempts ADD CONSTRAINT delivery_attempts_pkey PRIMARY KEY (delivery_id, number, id);
DROP INDEX delivery_attempts_by_time;
CREATE INDEX delivery_attempts_by_time ON delivery_attempts USING brin (started_at) WITH (autosummarize = on);
