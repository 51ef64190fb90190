"""Run state in one SQLAlchemy database: runs, steps, artifacts, replicas, transfers, ledger rows."""

from stratus.state.db import Base, Database, default_url, open_database

__all__ = ["Base", "Database", "default_url", "open_database"]
