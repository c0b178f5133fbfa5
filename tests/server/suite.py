"""Runs llama-server's own pytest suite (tools/server/tests of the pinned sdist) against
llama-server on bitnet-rs's libllama and on the reference libllama, with the same fixture model,
and compares the outcome of every test between the two.

    python tests/server/suite.py --bin DIR --ours DIR --model FILE [--out DIR] [--only ours|ref]
        [--files test_basic,test_completion,...] [-k EXPR] [--threads N]

--bin: the llama.cpp tools (cpp_ref/build_tools.sh: bin=; their RUNPATH finds the reference
libllama in ../lib); --ours: the directory holding our libllama.so.0 (put in front with
LD_LIBRARY_PATH). The suite is copied into a temporary llama.cpp-shaped tree (its tests open
../../../models/templates), never edited; bitnet_presets.py (a pytest plugin) points its hub
presets at --model. Writes <out>/<lib>.jsonl (one line a test: id, outcome, reason) and prints,
per test file, passed/failed/skipped/error for each library, every test that did not pass with
its reason, and every test whose outcome differs between the libraries.

Exit status: 0 when every test has the same outcome on both libraries (or, with --only, when the
run finished), 1 otherwise.
"""

import argparse
import collections
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# The files issue 20 names; the rest of the suite (vision, rerank, infill, LoRA, speculative,
# router, MCP, ...) is out of scope.
FILES = [
    "test_basic", "test_completion", "test_chat_completion", "test_tokenize", "test_embedding",
    "test_ctx_shift", "test_slot_save", "test_metrics", "test_security", "test_template",
    "test_ignore_eos", "test_kv_keep_only_active", "test_tool_call",
]


def sdist_dir():
    out = subprocess.run(["bash", os.path.join(ROOT, "cpp_ref", "fetch_sdist.sh")],
                         check=True, capture_output=True, text=True).stdout.strip()
    return os.path.join(out, "vendor", "llama.cpp")


def copy_suite(llama_cpp, work):
    """A llama.cpp-shaped tree: tools/server/tests copied, models/ (templates) linked."""
    tests = os.path.join(work, "llama.cpp", "tools", "server", "tests")
    shutil.copytree(os.path.join(llama_cpp, "tools", "server", "tests"), tests)
    os.symlink(os.path.join(llama_cpp, "models"), os.path.join(work, "llama.cpp", "models"))
    return tests


def run_lib(name, tests, args, lib_path, port):
    results = os.path.join(args.out, f"{name}.jsonl")
    log = os.path.join(args.out, f"{name}.log")
    if os.path.exists(results):
        os.remove(results)
    env = dict(os.environ)
    env.pop("LD_LIBRARY_PATH", None)
    if lib_path:
        env["LD_LIBRARY_PATH"] = lib_path
    env.update({
        "LLAMA_SERVER_BIN_PATH": os.path.join(args.bin, "llama-server"),
        "BITNET_SRV_MODEL": os.path.abspath(args.model),
        "BITNET_SRV_RESULTS": results,
        "PYTHONPATH": os.pathsep.join([tests, HERE]),
        "PORT": str(port),
        "LLAMA_CACHE": os.path.join(tests, "tmp"),
    })
    if args.threads:
        env["BITNET_SRV_THREADS"] = str(args.threads)
    cmd = [sys.executable, "-m", "pytest", "-p", "bitnet_presets", "-p", "no:cacheprovider",
           "-q", "-rN", "--tb=line"]
    if args.k:
        cmd += ["-k", args.k]
    cmd += [f"unit/{f}.py" for f in args.files]
    started = time.time()
    with open(log, "w", encoding="utf-8") as out:
        proc = subprocess.run(cmd, cwd=tests, env=env, stdout=out, stderr=subprocess.STDOUT,
                              timeout=args.timeout)
    print(f"suite: {name}: pytest exit {proc.returncode} in {time.time() - started:.0f} s "
          f"(log {log})", flush=True)
    return read_results(results)


def read_results(path):
    if not os.path.exists(path):
        sys.exit(f"suite: no results in {path}")
    with open(path, encoding="utf-8") as f:
        return {r["id"]: r for r in map(json.loads, f)}


def per_file(results):
    counts = collections.defaultdict(collections.Counter)
    for r in results.values():
        counts[r["id"].split("::")[0]][r["outcome"]] += 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bin", required=True, help="directory with llama-server (build_tools.sh bin=)")
    ap.add_argument("--ours", required=True, help="directory with our libllama.so.0")
    ap.add_argument("--model", required=True, help="the fixture that replaces the hub models")
    ap.add_argument("--out", default=None, help="results directory (default: a temporary one)")
    ap.add_argument("--only", choices=["ours", "ref"], help="run one library only")
    ap.add_argument("--files", default=",".join(FILES), help="comma-separated test files")
    ap.add_argument("-k", default=None, help="pytest -k expression")
    ap.add_argument("--port", type=int, default=18480, help="llama-server's port (default 18480)")
    ap.add_argument("--parallel", action="store_true", help="run both libraries at once")
    ap.add_argument("--summarize", action="store_true", help="only summarize --out's results")
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per library (default 3600)")
    ap.add_argument("--threads", type=int, default=0,
                    help="llama-server --threads where a test sets none (default: the server's "
                         "own default, every core)")
    args = ap.parse_args()
    args.files = [f.strip() for f in args.files.split(",") if f.strip()]
    args.out = args.out or tempfile.mkdtemp(prefix="bitnet-srv-suite-")
    os.makedirs(args.out, exist_ok=True)

    libs = {"ours": os.path.abspath(args.ours), "ref": None}
    names = [args.only] if args.only else ["ours", "ref"]

    def run(k_name):
        k, name = k_name
        work = tempfile.mkdtemp(prefix=f"bitnet-srv-tests-{name}-")
        try:
            return run_lib(name, copy_suite(llama_cpp, work), args, libs[name], args.port + 100 * k)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    if args.summarize:  # the results of an earlier run (also one cut short)
        runs = {name: read_results(os.path.join(args.out, f"{name}.jsonl")) for name in names}
        return summarize(runs, names)
    llama_cpp = sdist_dir()
    # One copy of the suite per library (its tests write under tests/tmp); --parallel runs the
    # two at once on different ports.
    with concurrent.futures.ThreadPoolExecutor(2 if args.parallel else 1) as pool:
        runs = dict(zip(names, pool.map(run, enumerate(names))))
    return summarize(runs, names)


def summarize(runs, names):
    outcomes = ["passed", "failed", "skipped", "error"]
    counts = {name: per_file(res) for name, res in runs.items()}
    files = sorted({f for c in counts.values() for f in c})
    print("\nper file (" + " | ".join(f"{n}: " + "/".join(outcomes) for n in names) + ")")
    for f in files:
        cells = [" ".join(f"{counts[n][f][o]:3d}" for o in outcomes) for n in names]
        print(f"  {f:40s} " + " | ".join(cells))
    for n in names:
        total = collections.Counter(r["outcome"] for r in runs[n].values())
        print(f"  total {n}: " + ", ".join(f"{total[o]} {o}" for o in outcomes))

    first = runs[names[0]]
    print(f"\nnot passed on {names[0]} (id: outcome: reason)")
    for tid, r in sorted(first.items()):
        if r["outcome"] != "passed":
            other = ""
            if len(names) == 2:
                o = runs[names[1]].get(tid)
                same = o and o["outcome"] == r["outcome"] and o["reason"] == r["reason"]
                other = "  [ref: same]" if same else f"  [ref: {o['outcome'] if o else 'missing'}" \
                    + (f": {o['reason']}" if o and o['reason'] != r['reason'] else "") + "]"
            print(f"  {tid}: {r['outcome']}: {r['reason']}{other}")

    if len(names) < 2:
        return 0
    ours, ref = runs["ours"], runs["ref"]
    both = set(ours) & set(ref)
    if both != set(ours) | set(ref):
        print(f"\nrun on one library only (a run cut short): {len(set(ours) ^ set(ref))} tests, "
              "left out of the comparison")
    differ = [t for t in sorted(both)
              if (ours.get(t) or {}).get("outcome") != (ref.get(t) or {}).get("outcome")]
    print(f"\noutcome differs between ours and the reference: {len(differ)} of "
          f"{len(set(ours) | set(ref))} tests")
    for t in differ:
        o, r = ours.get(t, {}), ref.get(t, {})
        print(f"  {t}: ours {o.get('outcome')} ({o.get('reason', '')}) | "
              f"ref {r.get('outcome')} ({r.get('reason', '')})")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
