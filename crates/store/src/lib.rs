//! Persistence for runs, samples, judgements and traces: SQLite by default, PostgreSQL for teams.
