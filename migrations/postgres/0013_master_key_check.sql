-- Facts about the database itself. `master_key_check` is a fixed text sealed with the
-- master key of the first node that served this database: webhook secrets and secured
-- header values are sealed with that key, so a node started with another (its own
-- generated `master.key`, a mistyped `HERALD_MASTER_KEY`) could not open them and would
-- fail every delivery it claimed. Such a node now refuses to start (src/startup.rs).
CREATE TABLE herald_meta (
    name  TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
