-- Claims look for pending rows nobody holds. While every pending row sat in one index,
-- each claim stepped over all rows in flight (leased to a node's workers) before it found
-- one it could take: with many thousands in flight a claim took over a second and found
-- nothing. Free rows and held rows now have an index each; a row moves from one to the
-- other when it is leased or given back. Expired leases (a node died) are found by
-- `lease_until`.
DROP INDEX deliveries_due;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at)
    WHERE status = 'pending' AND lease_until IS NULL;
CREATE INDEX deliveries_leased ON deliveries (lease_until)
    WHERE status = 'pending' AND lease_until IS NOT NULL;
