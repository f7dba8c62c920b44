"""Peak memory of the streaming upload at each part size it can reach.

A backup's archive grows its S3 part size from 8 MiB to 32 MiB as the part count rises
(store/multipart.py). This pushes the same amount of data through `MultipartUpload` at each
part size, in a fresh process each, to moto_server on loopback, and reports that process's
peak RSS: what a multi-hundred-GB backup would hold at its largest parts, without needing
such a database.

    .venv/bin/python bench/bench_upload_memory.py [--mib 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import os, resource, sys, time, boto3
import backproof.store.multipart as multipart
from backproof.store import open_store
part = int(sys.argv[1]); total = int(sys.argv[2])
multipart.DEFAULT_PART_SIZE = part
s3 = boto3.client("s3")
s3.create_bucket(Bucket="mem")
bs = open_store("s3://mem/x")
up = bs.open_upload("x/obj")
chunk = os.urandom(1 << 20)
t0 = time.monotonic()
for _ in range(total >> 20):
    up.write(chunk)
up.complete()
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.monotonic() - t0)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=1024, help="data pushed per part size")
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    moto_server = str(Path(sys.executable).parent / "moto_server")
    server = subprocess.Popen(
        [moto_server, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    try:
        time.sleep(1.5)
        rows = []
        for part_mib in (8, 16, 32):
            out = subprocess.run(
                [sys.executable, "-c", CHILD, str(part_mib << 20), str(args.mib << 20)],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
            rss_mib = int(out[0]) / 1024
            rows.append(
                {
                    "part_mib": part_mib,
                    "pushed_mib": args.mib,
                    "peak_rss_mib": round(rss_mib, 1),
                    "seconds": round(float(out[1]), 2),
                }
            )
            print(
                f"part {part_mib:>2} MiB: peak RSS {rss_mib:6.1f} MiB "
                f"({'PASS' if rss_mib < 200 else 'MISS'} < 200 MiB), "
                f"{args.mib} MiB in {float(out[1]):.1f} s"
            )
        print(json.dumps(rows))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
