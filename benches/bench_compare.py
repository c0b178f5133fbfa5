#!/usr/bin/env python3
"""bench-compare: fail when a benchmark figure regressed against the committed baseline.

    python3 benches/bench_compare.py BASELINE.json CURRENT.json [--threshold 0.10]

Both files are JSON from `bitnet bench --json`, `benches/compare_reference.sh` (OUT=...) or
`cargo bench --bench kernels -- --out FILE` or `cargo bench --bench heads`. They are flattened to dotted keys; a figure is
compared when both files have it and its name says which way is better:
  higher: *_tok_s, *_speedup, bandwidth_share
  lower:  load_s, load_to_first_token_s, peak_rss_bytes
(absolute kernel times are not compared: their speed-ups against the scalar reference are).
A compare_reference.sh file also gets ours / llama.cpp TQ2_0 of the same run for every prompt
and generation figure (`vs_llama.<config>.<figure>_speedup`); `--ratios-only` compares just
those, the kernel speed-ups and the heads bench's `heads.<head>.bandwidth_share` (each head's
GB/s over the read loop's of the same round), the figures that survive a slower or busier machine.
Exit status 1 when any figure is worse than the baseline by more than the threshold
(relative), 0 otherwise; every compared figure is printed.
"""
import json
import sys


def flatten(obj, prefix=""):
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
        out[prefix[:-1]] = float(obj)
    return out


def with_ratios(doc, flat):
    ref = doc.get("llama_tq2_0") if isinstance(doc, dict) else None
    if isinstance(ref, dict):
        for label, o in doc.get("ours", {}).items():
            for fig, v in ref.items():
                ours = o.get(f"{fig}_tok_s")
                if isinstance(ours, (int, float)) and v:
                    flat[f"vs_llama.{label}.{fig}_speedup"] = ours / v
    return flat


def direction(key):
    leaf = key.rsplit(".", 1)[-1]
    if leaf.endswith("_tok_s") or leaf.endswith("_speedup") or leaf == "bandwidth_share":
        return 1
    if leaf in ("peak_rss_bytes", "load_s", "load_to_first_token_s"):
        return -1
    return 0


def main(argv):
    args = [a for a in argv if not a.startswith("--")]
    threshold = 0.10
    if "--threshold" in argv:
        threshold = float(argv[argv.index("--threshold") + 1])
        args = [a for a in args if a != argv[argv.index("--threshold") + 1]]
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    docs = [json.load(open(a)) for a in args]
    base, cur = (with_ratios(d, flatten(d)) for d in docs)
    ratios_only = "--ratios-only" in argv
    worse = []
    for key in sorted(base):
        d = direction(key)
        if d == 0 or key not in cur or base[key] == 0:
            continue
        # heads.<head>.bandwidth_share (benches/heads.rs) is a same-round ratio too.
        if ratios_only and not (key.endswith("_speedup")
                                or (key.startswith("heads.") and key.endswith("bandwidth_share"))):
            continue
        change = (cur[key] - base[key]) / abs(base[key]) * d  # > 0: better
        mark = "REGRESSION" if change < -threshold else "ok"
        print(f"{mark:10} {key}: {base[key]:.4g} -> {cur[key]:.4g} ({change * 100:+.1f}%)")
        if change < -threshold:
            worse.append(key)
    if worse:
        print(f"bench-compare: {len(worse)} figure(s) regressed by more than "
              f"{threshold * 100:.0f}%", file=sys.stderr)
        return 1
    print(f"bench-compare: no figure regressed by more than {threshold * 100:.0f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
