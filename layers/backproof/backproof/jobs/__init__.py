"""The jobs: backup, integrity, checks, verify, restore, retention, listing. Plain functions over
typed requests that return data; no argument parsing, no printing, no exit codes."""
