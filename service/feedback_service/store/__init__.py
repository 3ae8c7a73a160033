"""Storage: the only code that speaks SQL, over clickhouse-connect (embedded engine or server)."""
