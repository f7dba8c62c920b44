"""What an operator restore will do, decided before anything is touched."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RestorePlan:
    backup_id: str
    database: str
    target: str  # display form, never the password
    target_dbname: str
    tables: list[str]  # empty: everything
    target_tables: int  # user tables already in the target
    clean: bool
    safety_backup: bool
    rows: int

    def lines(self) -> list[str]:
        what = ", ".join(self.tables) if self.tables else "the whole database"
        out = [
            f"backup:  {self.backup_id} ({self.database})",
            f"target:  {self.target}"
            + (f" (holds {self.target_tables} tables)" if self.target_tables else " (empty)"),
            f"restore: {what}, {self.rows} rows",
        ]
        if self.clean:
            out.append("clean:   objects from the backup are dropped and re-created in the target")
        if self.safety_backup:
            out.append("safety:  a backup of the target (tier safety) is taken first")
        return out
