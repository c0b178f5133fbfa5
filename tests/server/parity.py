"""llama-server on bitnet-rs's libllama against llama-server on the reference libllama, same
binary, same float-weight fixture, greedy:

1. every request (completion and chat, streamed and not) gives the same text on both libraries,
   and the streamed text equals the non-streamed one. The fixtures have random weights, so two
   candidates can be nearly tied: a text that differs only from a token where the reference's
   two best candidates are within TIE_NATS of each other and ours took the other one of the two
   is reported as a near-tie flip, not a mismatch (both libraries' top-2 log-probabilities at
   that token are printed);
2. on ours with `-np 4` (4 slots, continuous batching), 8 requests sent at once (a mix of
   completion/chat, streamed or not, prompts of different lengths so prefill chunks and single
   decode tokens share batches) each give exactly the text that request gets alone.

    python tests/server/parity.py --bin DIR --ours DIR --model FILE [--model FILE ...]

Exit status 0 when everything matches; every mismatch is printed.
"""

import argparse
import concurrent.futures
import os
import sys
import tempfile

from srv import Server, add_common_args, completion_text

# Two candidates whose log-probabilities are closer than this are a tie at float precision:
# crossval accepts logits at cosine >= 0.99999 from the reference (relative error ~4e-3).
TIE_NATS = 0.01

PROMPTS = [
    "Once upon a time",
    "The capital of France is",
    "def fibonacci(n):\n    ",
    "In a hole in the ground there lived a hobbit. Not a nasty, dirty, wet hole, filled with "
    "the ends of worms and an oozy smell, nor yet a dry, bare, sandy hole with nothing in it",
    "1, 2, 3, 4,",
    "Q: What is the boiling point of water?\nA:",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
    "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity",
    "Hello",
]


def request(i, prompt):
    """The i-th request: (path, body). Greedy; lengths differ so slots finish at other steps."""
    n = 16 + 8 * (i % 4)
    if i % 2 == 0:
        return "/completion", {"prompt": prompt, "n_predict": n, "temperature": 0,
                               "seed": 42}
    return "/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}],
                                    "max_tokens": n, "temperature": 0, "seed": 42}


def answer(server, path, body, streamed):
    if streamed:
        return server.stream(path, body)[0]
    r = server.post(path, body)
    r.raise_for_status()
    return completion_text(r.json())


def texts(server):
    """{(i, streamed): text} for every request, one at a time."""
    return {(i, s): answer(server, *request(i, p), s)
            for i, p in enumerate(PROMPTS) for s in (False, True)}


def top2(server, i):
    """Request i once more with log-probabilities: [(token, [(candidate, logprob)] * 2)]."""
    path, body = request(i, PROMPTS[i])
    if path == "/completion":
        r = server.post(path, {**body, "n_probs": 2}).json()
        return [(t["token"], [(c["token"], c["logprob"]) for c in t["top_logprobs"]])
                for t in r["completion_probabilities"]]
    r = server.post(path, {**body, "logprobs": True, "top_logprobs": 2}).json()
    return [(t["token"], [(c["token"], c["logprob"]) for c in t["top_logprobs"]])
            for t in r["choices"][0]["logprobs"]["content"]]


def near_tie(ours, ref):
    """Where two token lists first differ, if that is a near tie ours resolved the other way:
    (index, ours' top-2, the reference's top-2); else None."""
    for k, ((tok_o, top_o), (tok_r, top_r)) in enumerate(zip(ours, ref)):
        if tok_o == tok_r:
            continue
        if len(top_r) == 2 and top_r[0][1] - top_r[1][1] < TIE_NATS and tok_o == top_r[1][0] \
                and len(top_o) == 2 and top_o[1][0] == tok_r:
            return k, top_o, top_r
        return None
    return None


def check_libraries(args, model, logs):
    bad = ties = 0
    got, probs = {}, {}
    for name, lib in (("ref", None), ("ours", args.ours)):
        log = os.path.join(logs, f"{os.path.basename(model)}.{name}.log")
        with Server(args.bin, model, lib=lib, log=log, threads=args.threads) as server:
            got[name] = texts(server)
            probs[name] = {i: top2(server, i) for i in range(len(PROMPTS))}
    for key in sorted(got["ref"]):
        i, streamed = key
        ours, ref = got["ours"][key], got["ref"][key]
        kind = "streamed" if streamed else "plain"
        tie = near_tie(probs["ours"][i], probs["ref"][i]) if ours != ref else None
        if tie:
            ties += 1
            k, top_o, top_r = tie
            print(f"  near-tie flip, request {i} {kind}, token {k}: ours top-2 {top_o}, "
                  f"ref top-2 {top_r}")
        elif ours != ref:
            bad += 1
            print(f"  DIFFERS request {i} {kind}:\n    ours {ours!r}\n    ref  {ref!r}")
        if streamed and got["ours"][(i, False)] != ours:
            bad += 1
            print(f"  DIFFERS request {i}: ours streamed {ours!r} vs plain "
                  f"{got['ours'][(i, False)]!r}")
    n = len(got["ref"])
    print(f"parity {os.path.basename(model)}: {n - bad - ties} of {n} responses equal to the "
          f"reference, {ties} near-tie flips, {bad} mismatches ({n // 2} requests, plain and "
          f"streamed); e.g. request 0: {got['ours'][(0, False)]!r}")
    return bad


def check_slots(args, model, logs):
    log = os.path.join(logs, f"{os.path.basename(model)}.np4.log")
    with Server(args.bin, model, lib=args.ours, log=log, threads=args.threads,
                args=["-np", 4, "-cb"]) as server:
        jobs = [(i, p, i % 3 == 0) for i, p in enumerate(PROMPTS)]
        alone = {i: answer(server, *request(i, p), s) for i, p, s in jobs}
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            futures = {i: pool.submit(answer, server, *request(i, p), s) for i, p, s in jobs}
            together = {i: f.result() for i, f in futures.items()}
        alive = server.alive()
    bad = 0
    for i in alone:
        if alone[i] != together[i]:
            bad += 1
            print(f"  DIFFERS request {i} with 8 at once on -np 4:\n    together {together[i]!r}"
                  f"\n    alone    {alone[i]!r}")
    if not alive:
        bad += 1
        print("  llama-server died")
    print(f"slots {os.path.basename(model)}: -np 4, {len(jobs)} concurrent requests: "
          f"{len(jobs) - bad} equal to the request served alone")
    return bad


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_args(ap)
    ap.add_argument("--logs", default=None, help="directory for the servers' logs")
    ap.add_argument("--model-extra", action="append", default=[], help="more models to check")
    args = ap.parse_args()
    logs = args.logs or tempfile.mkdtemp(prefix="bitnet-srv-parity-")
    os.makedirs(logs, exist_ok=True)
    bad = 0
    for model in [args.model, *args.model_extra]:
        bad += check_libraries(args, model, logs)
        bad += check_slots(args, model, logs)
    print(f"parity: {'OK' if bad == 0 else f'{bad} mismatches'} (server logs in {logs})")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
