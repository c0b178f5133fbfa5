"""Bad input through llama-server: every case goes to llama-server on the reference libllama and
on ours (same binary, same fixture, `-c 512`); ours must answer with the same HTTP status and
error type as the reference (llama-server's usual error response), and stay up: /health is
checked after every case and the process must still be running at the end.

One kind of case is a documented difference (DIFFERENT_ON_PURPOSE): `/detokenize` of a token id
outside the vocabulary. The reference's llama_token_to_piece reads the token's attributes with
`std::vector::at`, whose `std::out_of_range` crosses the C function into llama-server, which
answers 500 (`vector::_M_range_check`). A C function cannot throw; ours logs an error line
(`llama_token_to_piece: token N is out of range (vocabulary of V)`) and returns 0 bytes, never a
negative length (llama.cpp's common_token_to_piece would take that as "buffer too small" and
assert on the retry), so llama-server answers 200 with empty text. For those cases ours' exact
answer and its log line are checked instead, and the reference's answer is printed.

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
    ("detokenize a negative token id", "/detokenize", {"tokens": [-7]}),
    ("embeddings without --embedding", "/v1/embeddings", {"input": "hi"}),
]


# case -> (ours' HTTP status, ours' JSON body, a line ours' server log must hold): answered
# differently from the reference on purpose (see the docstring).
DIFFERENT_ON_PURPOSE = {
    "detokenize a token past the vocabulary":
        (200, {"content": ""},
         "llama_token_to_piece: token 99999999 is out of range (vocabulary of "),
    "detokenize a negative token id":
        (200, {"content": ""}, "llama_token_to_piece: token -7 is out of range (vocabulary of "),
}


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
    return r.status_code, kind, message, payload


def run(args, lib, name, logs):
    """{case: (status, error type, error message, body[, "SERVER DOWN"])}, whether the server
    was alive at the end, its exit status on SIGTERM, and its log's text."""
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
    with open(log, encoding="utf-8", errors="replace") as f:
        return out, alive, code, f.read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_args(ap)
    args = ap.parse_args()
    logs = tempfile.mkdtemp(prefix="bitnet-srv-bad-")
    ref, _, _, _ = run(args, None, "ref", logs)
    ours, alive, code, ours_log = run(args, args.ours, "ours", logs)
    bad = 0
    for case, _, _ in CASES:
        o, r = ours.get(case), ref.get(case)
        up = o is not None and len(o) == 4
        if case in DIFFERENT_ON_PURPOSE:
            status, body, line = DIFFERENT_ON_PURPOSE[case]
            ok = up and o[0] == status and o[3] == body and line in ours_log
            label = "ok* " if ok else "BAD "
            detail = f" | ref {r[:3] if r else None} (a documented difference)" if ok else \
                f" | body {o[3] if o else None}; expected {status} {body} and the log line {line!r}"
        else:
            ok = up and r is not None and o[:2] == r[:2]
            label = "ok  " if ok else "DIFF"
            detail = "" if ok else f" | ref {r[:3] if r else None}"
        bad += not ok
        status, kind, message = o[:3] if o else (None, None, None)
        print(f"  {label} {case}: ours {status} {kind} {message!r:.90}{detail}")
    if not alive or code != 0:
        bad += 1
        print(f"  ours: alive at the end {alive}, exit status on SIGTERM {code}")
    print(f"bad input: {len(CASES) - min(bad, len(CASES))} of {len(CASES)} cases answered like "
          f"the reference (ok*: the documented difference, ours checked exactly), server up "
          f"throughout: {'OK' if bad == 0 else 'FAILED'} (logs {logs})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
