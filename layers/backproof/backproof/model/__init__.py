"""Pure data: the manifest, check results, the verification report, operator checks, plans.

Nothing here opens a connection, a socket or a process; every other layer may import it.
"""
