-- CSV exports of the analytics events (ClickHouse `events`), beside the PostgreSQL kinds.
ALTER TABLE table_exports DROP CONSTRAINT table_exports_kind_check;
ALTER TABLE table_exports ADD CONSTRAINT table_exports_kind_check
    CHECK (kind IN ('users', 'tickets', 'feedback', 'reports', 'analytics'));
