"""llama-server on bitnet-rs's libllama against llama-server on the reference libllama, same
binary, same float-weight fixture, greedy:

1. every request (completion and chat, streamed and not) gives the same text on both libraries,
   and the streamed text equals the non-streamed one. The fixtures have random weights, so two
   candidates can be nearly tied: a text that differs only from a token where the reference's
   two best candidates are within TIE_NATS of each other and ours took the other one of the two
   is reported as a near-tie flip, not a mismatch (both libraries' top-2 log-probabilities at
   that token, from the responses compared, are printed);
2. on ours with `-np 4` (4 slots, continuous batching), 8 requests sent at once (a mix of
   completion/chat, streamed or not, prompts of different lengths so prefill chunks and single
   decode tokens share batches) each give exactly the text that request gets alone.

    python tests/server/parity.py --bin DIR --ours DIR --model FILE [--model FILE ...]
        [--flash-attn off|on|auto]

Both servers run with `--flash-attn off` unless told otherwise. llama-server's default `auto`
turns the reference's flash attention on for a CPU. ggml's CPU flash attention over an f16 V
cache has two paths: batches of queries (a prompt) go through a tiled kernel that sums in f32,
a single query (every decoded token) through one that sums the weighted values in f16. That
moves log-probabilities by about 0.01 nats and makes the reference's answer depend on which
path a token took (the same request asked again after a prompt-cache hit, whose last prompt
token is re-evaluated alone, can pick another token). Our library has one attention, the reference's non-flash path (f32
sums over the f16 cache), whatever `flash_attn_type` asks; `--flash-attn off` makes the
reference compute the same function. tests/server/README.md has the measurements.

Exit status 0 when everything matches; every mismatch is printed.
"""

import argparse
import concurrent.futures
import os
import sys
import tempfile

from srv import Server, add_common_args, completion_text, token_probs

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
    """The i-th request: (path, body). Greedy, with the top-2 candidates of every token (what
    the near-tie rule reads; it does not change what is sampled); lengths differ so slots
    finish at other steps."""
    n = 16 + 8 * (i % 4)
    if i % 2 == 0:
        return "/completion", {"prompt": prompt, "n_predict": n, "temperature": 0,
                               "seed": 42, "n_probs": 2}
    return "/v1/chat/completions", {"messages": [{"role": "user", "content": prompt}],
                                    "max_tokens": n, "temperature": 0, "seed": 42,
                                    "logprobs": True, "top_logprobs": 2}


def answer(server, path, body, streamed):
    """(text, [(token, top-2 [(candidate, logprob)])]) of one request."""
    if streamed:
        text, _, probs = server.stream(path, body)
        return text, probs
    r = server.post(path, body)
    r.raise_for_status()
    return completion_text(r.json()), token_probs(r.json())


def answers(server):
    """{(i, streamed): (text, probs)} for every request, one at a time."""
    return {(i, s): answer(server, *request(i, p), s)
            for i, p in enumerate(PROMPTS) for s in (False, True)}


def near_tie(ours, ref):
    """Where two token lists first differ, if that is a near tie ours resolved the other way:
    (index, ours' top-2, the reference's top-2); else None. Both lists come from the very
    responses whose texts differ (the reference's own top-2 can change with its cache state,
    so they are not asked for again)."""
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
    got = {}
    for name, lib in (("ref", None), ("ours", args.ours)):
        log = os.path.join(logs, f"{os.path.basename(model)}.{name}.log")
        with Server(args.bin, model, lib=lib, log=log, threads=args.threads,
                    args=["--flash-attn", args.flash_attn]) as server:
            got[name] = answers(server)
    for key in sorted(got["ref"]):
        i, streamed = key
        (ours, ours_probs), (ref, ref_probs) = got["ours"][key], got["ref"][key]
        kind = "streamed" if streamed else "plain"
        tie = near_tie(ours_probs, ref_probs) if ours != ref else None
        if tie:
            ties += 1
            k, top_o, top_r = tie
            print(f"  near-tie flip, request {i} {kind}, token {k}: ours top-2 {top_o}, "
                  f"ref top-2 {top_r}")
        elif ours != ref:
            bad += 1
            k = next((k for k, (o, r) in enumerate(zip(ours_probs, ref_probs)) if o[0] != r[0]),
                     None)
            where = "" if k is None else \
                f"\n    first different token {k}: ours top-2 {ours_probs[k][1]}, " \
                f"ref top-2 {ref_probs[k][1]}"
            print(f"  DIFFERS request {i} {kind}:\n    ours {ours!r}\n    ref  {ref!r}{where}")
        if streamed and got["ours"][(i, False)][0] != ours:
            bad += 1
            print(f"  DIFFERS request {i}: ours streamed {ours!r} vs plain "
                  f"{got['ours'][(i, False)][0]!r}")
    n = len(got["ref"])
    print(f"parity {os.path.basename(model)} (--flash-attn {args.flash_attn}): "
          f"{n - bad - ties} of {n} responses equal to the reference, {ties} near-tie flips, "
          f"{bad} mismatches ({n // 2} requests, plain and streamed); e.g. request 0: "
          f"{got['ours'][(0, False)][0]!r}")
    return bad


def check_slots(args, model, logs):
    log = os.path.join(logs, f"{os.path.basename(model)}.np4.log")
    with Server(args.bin, model, lib=args.ours, log=log, threads=args.threads,
                args=["-np", 4, "-cb"]) as server:
        jobs = [(i, p, i % 3 == 0) for i, p in enumerate(PROMPTS)]
        alone = {i: answer(server, *request(i, p), s)[0] for i, p, s in jobs}
        with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
            futures = {i: pool.submit(answer, server, *request(i, p), s) for i, p, s in jobs}
            together = {i: f.result()[0] for i, f in futures.items()}
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
    ap.add_argument("--flash-attn", choices=["off", "on", "auto"], default="off",
                    help="llama-server --flash-attn for the comparison with the reference "
                         "(default off: see the module's docstring)")
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
