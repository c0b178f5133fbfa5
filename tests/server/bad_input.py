"""Bad input through llama-server: every case goes to llama-server on the reference libllama and
on ours (same binary, same fixture, `-c 512`); ours must answer with the same HTTP status and
error type as the reference (llama-server's usual error response), and stay up: /health is
checked after every case and the process must still be running at the end.

    python tests/server/bad_input.py --bin DIR --ours DIR --model FILE
"""

import argparse
import os
import sys
import tempfile

import requests

from srv import Server, add_common_args

CASES = [
    # (name, path, raw body or JSON object)
    ("garbage JSON", "/completion", b"{\"prompt\": \"hi\", n_predict: ]]"),
    ("not JSON at all", "/v1/chat/completions", b"\xff\xfe\x00garbage"),
    ("JSON array instead of object", "/completion", b"[1, 2, 3]"),
    ("100k-token prompt on a 512 context", "/completion",
     {"prompt": "hello " * 100_000, "n_predict": 4}),
    ("100k-token chat on a 512 context", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "hello " * 100_000}], "max_tokens": 4}),
    ("negative n_predict (-5)", "/completion",
     {"prompt": "Once upon a time", "n_predict": -5, "temperature": 0}),
    ("negative max_tokens (-3)", "/v1/chat/completions",
     {"messages": [{"role": "user", "content": "hi"}], "max_tokens": -3, "temperature": 0}),
    ("invalid grammar", "/completion",
     {"prompt": "hi", "n_predict": 4, "grammar": "root ::= ( \"a\" | "}),
    ("grammar with an undefined rule", "/completion",
     {"prompt": "hi", "n_predict": 4, "grammar": "root ::= missing-rule"}),
    ("invalid json_schema", "/completion",
     {"prompt": "hi", "n_predict": 4, "json_schema": {"type": "no-such-type"}}),
    ("prompt token id past the vocabulary", "/completion",
     {"prompt": [1, 15043, 99_999_999], "n_predict": 4}),
    ("negative prompt token id", "/completion", {"prompt": [1, -7], "n_predict": 4}),
    ("logit_bias on a token past the vocabulary", "/completion",
     {"prompt": "hi", "n_predict": 4, "logit_bias": [[99_999_999, -100]]}),
    ("n_probs huge", "/completion", {"prompt": "hi", "n_predict": 2, "n_probs": 1_000_000}),
    ("wrong type for n_predict", "/completion", {"prompt": "hi", "n_predict": "many"}),
    ("empty prompt", "/completion", {"prompt": "", "n_predict": 4}),
    ("id_slot out of range", "/completion", {"prompt": "hi", "n_predict": 4, "id_slot": 99}),
    ("tokenize with garbage", "/tokenize", {"content": {"nested": [None]}}),
    ("detokenize a token past the vocabulary", "/detokenize", {"tokens": [99_999_999]}),
    ("embeddings without --embedding", "/v1/embeddings", {"input": "hi"}),
]


def send(server, path, body):
    if isinstance(body, bytes):
        r = requests.post(server.url + path, data=body, timeout=300,
                          headers={"Content-Type": "application/json"})
    else:
        r = requests.post(server.url + path, json=body, timeout=300)
    try:
        payload = r.json()
    except ValueError:
        payload = None
    err = payload.get("error") if isinstance(payload, dict) else None
    kind = err.get("type") if isinstance(err, dict) else None
    message = err.get("message") if isinstance(err, dict) else None
    return r.status_code, kind, message


def run(args, lib, name, logs):
    out = {}
    log = os.path.join(logs, f"{name}.log")
    with Server(args.bin, args.model, lib=lib, log=log, threads=args.threads, ctx=512) as server:
        for case, path, body in CASES:
            out[case] = send(server, path, body)
            healthy = requests.get(server.url + "/health", timeout=30).status_code == 200
            if not healthy or not server.alive():
                out[case] += ("SERVER DOWN",)
                break
        alive = server.alive()
        code = server.stop()
    return out, alive, code


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_args(ap)
    args = ap.parse_args()
    logs = tempfile.mkdtemp(prefix="bitnet-srv-bad-")
    ref, _, _ = run(args, None, "ref", logs)
    ours, alive, code = run(args, args.ours, "ours", logs)
    bad = 0
    for case, _, _ in CASES:
        o, r = ours.get(case), ref.get(case)
        same = o is not None and r is not None and o[:2] == r[:2] and len(o) == 3
        bad += not same
        status, kind, message = o if o else (None, None, None)
        print(f"  {'ok  ' if same else 'DIFF'} {case}: ours {status} {kind} {message!r:.90}"
              + ("" if same else f" | ref {r}"))
    if not alive or code != 0:
        bad += 1
        print(f"  ours: alive at the end {alive}, exit status on SIGTERM {code}")
    print(f"bad input: {len(CASES) - bad if bad <= len(CASES) else 0} of {len(CASES)} cases "
          f"answered like the reference, server up throughout: {'OK' if bad == 0 else 'FAILED'} "
          f"(logs {logs})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
