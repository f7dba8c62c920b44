"""PostgreSQL's own programs and catalogs: one class per external program (argv built in the
constructor, readable without running it), program discovery by major version, the one
connection-target type, pg_restore's message rules, TOC selection, the custom-archive offset
patcher, local clusters and the inventory (fingerprints)."""
