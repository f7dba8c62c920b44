"""Lambda handlers: each parses its event and environment, calls one engine function, and
shapes the answer. No SQL here; AWS plumbing the engine has no use for lives in `aws.py`."""
