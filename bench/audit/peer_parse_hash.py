"""The peer: the floor of any Python dataset audit - stream the file, parse each row's JSON
and sha256 it (no scanning, no dedup). Prints rows and seconds."""
import hashlib
import json
import sys
import time

start = time.perf_counter()
rows = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        hashlib.sha256(line.rstrip(b"\n")).digest()
        json.loads(line)
        rows += 1
print(f"{rows} {time.perf_counter() - start:.2f}")
