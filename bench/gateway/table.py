"""Prints the gateway benchmark's tables from the oha JSON files that bench/gateway/run.sh wrote.

    table.py latency OUT_DIR RATE...   direct, emguard, emguard-durable, LiteLLM side by side
    table.py soak OUT_DIR              emguard's RSS over the soak
"""

import json
import sys
from pathlib import Path

# A point is sustained when it answered at least this share of the offered rate, all with 200.
SUSTAINED_SHARE = 0.99
TARGETS = [
    ("direct", "direct to the upstream"),
    ("emguard", "emguard (auth, limits, traces, code filter)"),
    ("emguard-normal", "emguard, trace writer at normal priority"),
    ("emguard-durable", "emguard, durable traces"),
    ("litellm", "LiteLLM proxy"),
]


def read_point(out, target, rate):
    path = out / f"{target}-{rate}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    statuses = {int(k): v for k, v in (data.get("statusCodeDistribution") or {}).items()}
    failures = sum((data.get("errorDistribution") or {}).values())
    ok = statuses.get(200, 0)
    errors = failures + sum(v for k, v in statuses.items() if k != 200)
    seconds = data["summary"]["total"]
    # run.sh writes "LOAD_1MIN CPU_TICKS TICKS_PER_SECOND" (the server's CPU over the point).
    load_file = out / f"{target}-{rate}.load"
    load, ticks, hz = "?", 0, 100
    if load_file.exists():
        load, ticks, hz = load_file.read_text().split()
    return {
        "p50": data["latencyPercentiles"]["p50"] * 1000,
        "p99": data["latencyPercentiles"]["p99"] * 1000,
        "achieved": ok / seconds if seconds else 0.0,
        "errors": errors,
        "load": load,
        "cpu_us": int(ticks) / int(hz) * 1e6 / ok if ok and int(ticks) else None,
    }


def ms(value):
    return "-" if value is None else f"{value:.3f}"


def latency(out, rates):
    points = {(t, r): read_point(out, t, r) for t, _ in TARGETS for r in rates}
    header = (
        "| target | offered rps | achieved rps | errors | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| server CPU µs/req | load | verdict |"
    )
    print(header)
    print("|" + "---|" * header.count(" | ") + "---|")
    for target, label in TARGETS:
        for rate in rates:
            p = points[(target, rate)]
            if p is None:
                continue
            direct = points.get(("direct", rate))
            added = (None, None)
            if target != "direct" and direct:
                added = (p["p50"] - direct["p50"], p["p99"] - direct["p99"])
            sustained = p["errors"] == 0 and p["achieved"] >= SUSTAINED_SHARE * int(rate)
            verdict = "sustained" if sustained else "NOT sustained"
            cpu = "-" if p["cpu_us"] is None else f"{p['cpu_us']:.0f}"
            print(
                f"| {label} | {rate} | {p['achieved']:.0f} | {p['errors']} | {ms(p['p50'])} | "
                f"{ms(p['p99'])} | {ms(added[0])} | {ms(added[1])} | {cpu} | {p['load']} | {verdict} |"
            )
    print()
    for rate in rates:
        direct, ours, peer = (points.get((t, rate)) for t in ("direct", "emguard", "litellm"))
        if not (direct and ours and peer):
            continue
        for q in ("p50", "p99"):
            ours_added = ours[q] - direct[q]
            peer_added = peer[q] - direct[q]
            ratio = f"{peer_added / ours_added:.0f}x" if ours_added > 0 else "n/a (emguard adds <= 0)"
            print(f"{rate} rps {q}: LiteLLM adds {peer_added:.3f} ms, emguard {ours_added:.3f} ms: {ratio}")
    durable, plain = points.get(("emguard-durable", "1000")), points.get(("emguard", "1000"))
    if durable and plain:
        print(
            f"durable traces at 1000 rps cost {durable['p50'] - plain['p50']:+.3f} ms p50, "
            f"{durable['p99'] - plain['p99']:+.3f} ms p99 over non-durable"
        )


def soak(out):
    # run.sh writes "SECONDS\tVMRSS_KB\tRSSANON_KB\t" per sample.
    rows = [line.split() for line in (out / "soak-rss.tsv").read_text().splitlines() if line.strip()]
    samples = [(int(t), int(rss) / 1024, int(anon) / 1024) for t, rss, anon in rows]
    end = samples[-1][0]
    print(f"emguard memory over {end} s at 1000 rps (sampled every 10 s), MiB:")
    for name, column in (("RSS", 1), ("anonymous (heap)", 2)):
        values = [s[column] for s in samples]
        # Growth over the second half, once buffers and caches have settled.
        half = [s[column] for s in samples if s[0] >= end / 2]
        print(
            f"{name}: start {values[0]:.1f}, end {values[-1]:.1f}, max {max(values):.1f}; "
            f"second half {half[0]:.1f} -> {half[-1]:.1f} ({half[-1] - half[0]:+.1f})"
        )
    point = read_point(out, "soak", "1000")
    if point:
        print(
            f"load: achieved {point['achieved']:.0f} rps, {point['errors']} errors, "
            f"p50 {point['p50']:.3f} ms, p99 {point['p99']:.3f} ms"
        )


def main():
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "latency":
        latency(out, sys.argv[3:])
    elif mode == "soak":
        soak(out)
    else:
        sys.exit(f"table.py: unknown mode {mode}")


if __name__ == "__main__":
    main()
