"""Prints the gateway benchmark's tables from the oha JSON files that bench/gateway/run.sh wrote.

    table.py latency OUT_DIR RATE...   every target side by side, with its difference from the
                                       plain `emguard` target of the same run
    table.py soak OUT_DIR              emguard's RSS over the soak

run.sh names a point TARGET-RATE-rROUND (.json: oha's output; .load: load average and the
server's CPU; .metrics0/.metrics1: the gateway's /metrics before and after the measured load).
"""

import json
import re
import statistics
import sys
from pathlib import Path

# A point is sustained when it answered at least this share of the offered rate, all with 200.
SUSTAINED_SHARE = 0.99
TARGETS = [
    ("direct", "direct to the upstream"),
    ("emguard", "emguard (auth, limits, traces, code filter)"),
    ("emguard-normal", "emguard, trace writer at normal priority"),
    ("emguard-review", "emguard + review policy (holds none)"),
    ("emguard-monitor", "emguard + monitor (local judge, 10% sampling)"),
    ("emguard-monitor-apart", "emguard + monitor, judge on the other core"),
    ("emguard-durable", "emguard, durable traces"),
    ("litellm", "LiteLLM proxy"),
]
# The issues' bounds on what a feature adds over the plain `emguard` target of the same run, in
# ms of p99: (target, rate, issue).
BOUNDS = [
    ("emguard-review", "1000", "issue 16: review policy check on answers not held"),
    ("emguard-monitor", "1000", "issue 17: monitor at 10% sampling"),
    ("emguard-monitor", "5000", "issue 17: monitor at 10% sampling"),
    ("emguard-monitor-apart", "1000", "issue 17: monitor at 10% sampling, judge_cpus apart"),
    ("emguard-monitor-apart", "5000", "issue 17: monitor at 10% sampling, judge_cpus apart"),
]
BOUND_MS = 0.1
MONITOR_COUNTERS = ("offered", "sampled", "dropped", "judged")


def read_metrics(path):
    """Sums of a Prometheus text file's samples by metric name (all labels together)."""
    sums = {}
    if not path.exists():
        return None
    for line in path.read_text().splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)", line)
        if not m:
            continue
        try:
            value = float(m.group(3))
        except ValueError:
            continue
        sums[m.group(1)] = sums.get(m.group(1), 0.0) + value
    return sums


def read_point(out, name):
    path = out / f"{name}.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    statuses = {int(k): v for k, v in (data.get("statusCodeDistribution") or {}).items()}
    failures = sum((data.get("errorDistribution") or {}).values())
    ok = statuses.get(200, 0)
    errors = failures + sum(v for k, v in statuses.items() if k != 200)
    seconds = data["summary"]["total"]
    # run.sh writes "LOAD_1MIN CPU_TICKS TICKS_PER_SECOND" (the server's CPU over the point).
    load_file = out / f"{name}.load"
    load, ticks, hz = "?", 0, 100
    if load_file.exists():
        load, ticks, hz = load_file.read_text().split()
    percentiles = data.get("latencyPercentiles") or {}
    if percentiles.get("p99") is None:  # no request answered at all
        return {"p50": None, "p99": None, "achieved": 0.0, "errors": errors, "load": load,
                "cpu_us": None, "monitor": None}
    before, after = read_metrics(out / f"{name}.metrics0"), read_metrics(out / f"{name}.metrics1")
    monitor = None
    if before is not None and after is not None and "emguard_monitor_offered" in after:
        monitor = {c: after.get(f"emguard_monitor_{c}", 0) - before.get(f"emguard_monitor_{c}", 0)
                   for c in MONITOR_COUNTERS}
    return {
        "p50": percentiles["p50"] * 1000,
        "p99": percentiles["p99"] * 1000,
        "achieved": ok / seconds if seconds else 0.0,
        "errors": errors,
        "load": load,
        "cpu_us": int(ticks) / int(hz) * 1e6 / ok if ok and int(ticks) else None,
        "monitor": monitor,
    }


def rounds_of(out):
    found = {int(m.group(1)) for f in out.glob("*-r*.json") if (m := re.search(r"-r(\d+)\.json$", f.name))}
    return sorted(found) or [1]


def ms(value):
    return "-" if value is None else f"{value:.3f}"


def signed(value):
    return "-" if value is None else f"{value:+.3f}"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def paired(points, other, q):
    """Per round, this point's percentile minus the other target's in the same round."""
    return [p[q] - o[q] for p, o in zip(points, other) if p and o and p[q] is not None and o[q] is not None]


def spread(values):
    """`median (min..max)` of per-round differences; the median alone for one round."""
    if not values:
        return "-"
    if len(values) == 1:
        return signed(values[0])
    return f"{signed(statistics.median(values))} ({signed(min(values))}..{signed(max(values))})"


def latency(out, rates):
    rounds = rounds_of(out)
    points = {(t, r): [read_point(out, f"{t}-{r}-r{k}") for k in rounds] for t, _ in TARGETS for r in rates}
    print(f"{len(rounds)} round(s); per target and rate: medians over the rounds; differences are "
          "paired by round (median, and min..max over rounds)")
    print()
    header = (
        "| rate | target | achieved rps | errors | p50 ms | p99 ms | vs emguard p50 ms | vs emguard p99 ms "
        "| added over direct p50 ms | added over direct p99 ms | server CPU µs/req | load | verdict |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for rate in rates:
        plain, direct = points[("emguard", rate)], points[("direct", rate)]
        for target, label in TARGETS:
            ps = points[(target, rate)]
            if not any(ps):
                continue
            present = [p for p in ps if p]
            sustained = all(p["errors"] == 0 and p["achieved"] >= SUSTAINED_SHARE * int(rate) for p in present)
            vs = ("-", "-") if target in ("emguard", "direct") else (spread(paired(ps, plain, "p50")), spread(paired(ps, plain, "p99")))
            added = ("-", "-") if target == "direct" else (spread(paired(ps, direct, "p50")), spread(paired(ps, direct, "p99")))
            cpu = median([p["cpu_us"] for p in present])
            print(
                f"| {rate} | {label} | {min(p['achieved'] for p in present):.0f} | {sum(p['errors'] for p in present)} "
                f"| {ms(median([p['p50'] for p in present]))} | {ms(median([p['p99'] for p in present]))} "
                f"| {vs[0]} | {vs[1]} | {added[0]} | {added[1]} | {'-' if cpu is None else f'{cpu:.0f}'} "
                f"| {' '.join(p['load'] for p in present)} | {'sustained' if sustained else 'NOT sustained'} |"
            )
    print()
    for target, rate in ((t, r) for t in ("emguard-monitor", "emguard-monitor-apart") for r in rates):
        ps = [p for p in points.get((target, rate), []) if p and p["monitor"]]
        if not ps:
            continue
        total = {c: sum(p["monitor"][c] for p in ps) for c in MONITOR_COUNTERS}
        offered = total["offered"] or 1
        print(
            f"{target} at {rate} rps, measured seconds of {len(ps)} round(s): offered {total['offered']:.0f}, "
            f"sampled {total['sampled']:.0f} ({100 * total['sampled'] / offered:.1f}%), "
            f"dropped {total['dropped']:.0f} ({100 * total['dropped'] / offered:.1f}% of offered), "
            f"judged {total['judged']:.0f}"
        )
    # Run-to-run noise: the plain target's own p99 spread over the rounds, to read the bounds by.
    for rate in rates:
        own = [p["p99"] for p in points[("emguard", rate)] if p and p["p99"] is not None]
        if len(own) > 1:
            print(f"emguard's own p99 at {rate} rps over {len(own)} rounds: {min(own):.3f}..{max(own):.3f} ms "
                  f"(spread {max(own) - min(own):.3f} ms: the run-to-run noise)")
    for target, rate, issue in BOUNDS:
        diffs = paired(points.get((target, rate), []), points.get(("emguard", rate), []), "p99")
        if not diffs:
            continue
        worst, mid = max(diffs), statistics.median(diffs)
        verdict = "within" if mid <= BOUND_MS else "NOT within"
        own = [p["p99"] for p in points[("emguard", rate)] if p and p["p99"] is not None]
        if len(own) < 2:
            caveat = "; one round: no noise estimate, rerun with --rounds 3"
        elif max(own) - min(own) > BOUND_MS:
            caveat = (f"; but emguard's own p99 varied {max(own) - min(own):.3f} ms over the rounds: "
                      "the bound is below this run's noise")
        else:
            caveat = ""
        print(
            f"{issue}: {target} p99 at {rate} rps vs emguard, same run: median {mid:+.3f} ms over "
            f"{len(diffs)} round(s) (worst {worst:+.3f}): {verdict} {BOUND_MS} ms{caveat}"
        )
    print()
    for rate in rates:
        direct, ours, peer = (points[(t, rate)][0] for t in ("direct", "emguard", "litellm"))
        if not (direct and ours and peer) or None in (direct["p50"], ours["p50"], peer["p50"]):
            continue
        for q in ("p50", "p99"):
            ours_added = ours[q] - direct[q]
            peer_added = peer[q] - direct[q]
            ratio = f"{peer_added / ours_added:.0f}x" if ours_added > 0 else "n/a (emguard adds <= 0)"
            print(f"{rate} rps {q}: LiteLLM adds {peer_added:.3f} ms, emguard {ours_added:.3f} ms: {ratio}")
    if "1000" in rates:
        diffs50 = paired(points[("emguard-durable", "1000")], points[("emguard", "1000")], "p50")
        diffs99 = paired(points[("emguard-durable", "1000")], points[("emguard", "1000")], "p99")
        if diffs50:
            print(f"durable traces at 1000 rps cost {spread(diffs50)} ms p50, {spread(diffs99)} ms p99 over non-durable")


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
    point = read_point(out, "soak-1000-r1")
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
