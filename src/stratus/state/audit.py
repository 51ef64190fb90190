"""The audit trail in the state database: append one record per state-changing command, list them."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from stratus.redact import redact
from stratus.state.db import Database
from stratus.state.models import AuditRow, utcnow

__all__ = ["AuditRecord", "append_audit", "audit_records"]


@dataclass(frozen=True)
class AuditRecord:
    """One command as recorded; ``arguments`` are already redacted."""

    at: datetime
    actor: str
    command: str
    arguments: list[str]
    outcome: str
    exit_code: int

    def to_json(self) -> dict[str, Any]:
        """For ``stratus audit ls --json``."""
        return {
            "at": self.at.isoformat(),
            "actor": self.actor,
            "command": self.command,
            "arguments": self.arguments,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
        }


def append_audit(db: Database, *, actor: str, command: str, arguments: list[str], exit_code: int) -> None:
    """Append a record; every argument passes through :func:`redact` before it is stored."""
    row = AuditRow(
        at=utcnow(),
        actor=actor,
        command=command,
        arguments=json.dumps([redact(a) for a in arguments]),
        outcome="ok" if exit_code == 0 else "failed",
        exit_code=exit_code,
    )
    with db.session() as session:
        session.add(row)
        session.commit()


def audit_records(db: Database, since: datetime | None = None) -> list[AuditRecord]:
    """Records oldest first, from ``since`` on when given."""
    query = select(AuditRow).order_by(AuditRow.at, AuditRow.id)
    if since is not None:
        query = query.where(AuditRow.at >= since)
    with db.session() as session:
        rows = session.scalars(query).all()
    return [
        AuditRecord(r.at, r.actor, r.command, json.loads(r.arguments), r.outcome, r.exit_code) for r in rows
    ]
