"""What an operator restore will do, decided before anything is touched."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    owners: bool = False  # owners and grants restored
    roles_to_create: list[str] = field(default_factory=list)  # missing on the target
    owners_note: str = ""  # why owners and grants are not restored, unless asked

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
        if self.roles_to_create:
            out.append(f"roles:   created first (NOLOGIN): {', '.join(self.roles_to_create)}")
        out.append(
            "owners:  owners and grants as in the backup"
            if self.owners
            else f"owners:  not restored ({self.owners_note or '--no-owners'})"
        )
        return out
