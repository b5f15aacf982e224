-- Rate-limit counters are rewritten on every limited request and worthless after a crash:
-- skipping the WAL keeps one hot key's upserts from queueing behind a disk flush each.
ALTER TABLE "rate_limit_counters" SET UNLOGGED;
