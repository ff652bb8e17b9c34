"""The ledger: SQLite history of calls (and, with the orchestrator, runs and subtasks)."""
