#!/usr/bin/env bash
# Cost of one rate-limit check: emguard's local limiter beside the governor crate on the same
# workload in the same run, then emguard's Redis backend against a private redis-server.
# Usage: bench/ratelimit.sh   (needs redis-server on PATH for the Redis figures)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo bench -p emguard-gateway --bench ratelimit
