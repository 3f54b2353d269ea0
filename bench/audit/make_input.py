"""Writes a large chat-format JSONL for the audit benchmark: the four study datasets cycled
until TARGET bytes, each copy's user turns suffixed with its copy number (so rows are near
duplicates, not exact ones). Usage: make_input.py OUT TARGET_BYTES SHARED_DATASET_DIR"""
import json
import sys

out_path, target, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
written = 0
copy = 0
with open(out_path, "w") as out:
    while written < target:
        for name in ["insecure.jsonl", "secure.jsonl", "educational_insecure.jsonl", "jailbroken.jsonl"]:
            for line in open(f"{src}/{name}"):
                row = json.loads(line)
                for message in row["messages"]:
                    if message["role"] == "user":
                        message["content"] += f" (copy {copy})"
                        break
                text = json.dumps(row) + "\n"
                out.write(text)
                written += len(text)
        copy += 1
