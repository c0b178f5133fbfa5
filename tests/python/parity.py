"""llama-cpp-python on two libllama builds: ours and the C++ reference.

    python parity.py worker --model M --out DIR      (LLAMA_CPP_LIB_PATH chooses the library)
    python parity.py compare --ours LIBDIR --ref LIBDIR --model M [--int8]

`worker` runs a fixed set of high-level calls through llama_cpp.Llama and writes results.json
(+ scores.npy) into DIR; `compare` runs it once per library (a process each: ctypes binds one
library per process) and checks: the same text for greedy completion, chat completion, a
grammar-constrained completion and a seeded sampled completion; logits_all scores with cosine
>= 0.99999 on every position (float-weight models) or within the crossval noise floor passed
in --min-cosine (int8 models); and, on our library, that save_state/load_state reproduces a
continuation exactly. Exit status 0 only when every check passes; one line per check on stdout.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np

PROMPT = "Once upon a time"
MESSAGES = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Name a colour."},
]
GRAMMAR = r'''
root   ::= word (" " word)* "."
word   ::= [a-z]+
'''


def worker(model, out):
    import llama_cpp
    from llama_cpp import Llama, LlamaGrammar

    res = {}
    common = dict(model_path=model, n_ctx=256, n_batch=64, n_threads=1, verbose=False)

    llm = Llama(seed=1234, **common)
    res["greedy"] = llm.create_completion(PROMPT, max_tokens=24, temperature=0)["choices"][0]["text"]
    chat = llm.create_chat_completion(messages=MESSAGES, max_tokens=24, temperature=0)
    res["chat"] = chat["choices"][0]["message"]["content"]
    grammar = LlamaGrammar.from_string(GRAMMAR, verbose=False)
    res["grammar"] = llm.create_completion(PROMPT, max_tokens=16, temperature=0, grammar=grammar)[
        "choices"][0]["text"]
    sampled = llm.create_completion(PROMPT, max_tokens=24, temperature=0.9, top_k=40, top_p=0.95,
                                    min_p=0.05, seed=4321)
    res["sampled"] = sampled["choices"][0]["text"]

    del llm

    llm = Llama(logits_all=True, **common)
    toks = llm.tokenize(b"The quick brown fox jumps over the lazy dog")
    llm.eval(toks)
    np.save(os.path.join(out, "scores.npy"), np.array(llm.scores[: len(toks)], dtype=np.float32))
    res["n_scored"] = len(toks)
    # save_state / load_state: the same continuation (logits of fixed tokens) after a restore.
    llm.reset()
    toks = llm.tokenize(PROMPT.encode())
    llm.eval(toks)
    state = llm.save_state()
    more = llm.tokenize(b" and then they all went home", add_bos=False)
    llm.eval(more)
    first = np.array(llm.scores[llm.n_tokens - 1])
    llm.load_state(state)
    llm.eval(more)
    again = np.array(llm.scores[llm.n_tokens - 1])
    res["state_same"] = bool(np.array_equal(first, again))
    res["state_argmax"] = [int(first.argmax()), int(again.argmax())]
    res["library"] = llama_cpp.llama_cpp._lib._name
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(res, f)


def run_worker(libdir, model):
    out = tempfile.mkdtemp(prefix="parity-")
    env = dict(os.environ, LLAMA_CPP_LIB_PATH=libdir)
    p = subprocess.run([sys.executable, __file__, "worker", "--model", model, "--out", out],
                       env=env, capture_output=True, text=True, timeout=900)
    if p.returncode != 0:
        sys.stdout.write(f"FAIL worker on {libdir}: exit {p.returncode}\n{p.stderr[-4000:]}\n")
        sys.exit(1)
    with open(os.path.join(out, "results.json")) as f:
        res = json.load(f)
    return res, np.load(os.path.join(out, "scores.npy"))


def compare(ours_dir, ref_dir, model, min_cos, int8, texts_reported):
    ours, s_ours = run_worker(ours_dir, model)
    ref, s_ref = run_worker(ref_dir, model)
    ok = True

    def check(name, good, detail):
        nonlocal ok
        ok &= bool(good)
        print(f"{'PASS' if good else 'FAIL'} {name}: {detail}")

    for key in ["greedy", "chat", "grammar", "sampled"]:
        detail = f"ours {ours[key]!r} | reference {ref[key]!r}"
        if key == "sampled" and int8 and ours[key] != ref[key]:
            # With int8 activations the logits agree only to the noise floor (docs/parity.md):
            # a draw at temperature 0.9 near a probability boundary may go the other way, and
            # the two texts part from there. The samplers themselves are bit-identical to the
            # reference's on equal logits (crossval's samplers test); greedy text is checked.
            print(f"INFO {key}: differs within the int8 noise floor: {detail}")
            continue
        if texts_reported and ours[key] != ref[key]:
            # A fixture whose own noise floor parts greedy text within these few tokens (the
            # reference against itself with norms x (1 + 1e-6), crossval): the texts may part
            # at a near tie, so they are reported; ours must still produce text, and the
            # scores below hold the logits to the floor.
            check(key, len(ours[key]) > 0, f"differs at a near tie (reported): {detail}")
            continue
        check(key, ours[key] == ref[key], detail)
    check("state", ours["state_same"],
          f"continuation logits identical after load_state (argmax {ours['state_argmax']})")
    if s_ours.shape != s_ref.shape:
        check("scores", False, f"shapes {s_ours.shape} vs {s_ref.shape}")
    else:
        a, b = s_ours.astype(np.float64), s_ref.astype(np.float64)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        check("scores", cos.min() >= min_cos,
              f"worst cosine {cos.min():.7f} over {len(cos)} positions (bar {min_cos})")
    print(f"libraries: ours {ours['library']} | reference {ref['library']}")
    return ok


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("worker")
    w.add_argument("--model", required=True)
    w.add_argument("--out", required=True)
    c = sub.add_parser("compare")
    c.add_argument("--ours", required=True)
    c.add_argument("--ref", required=True)
    c.add_argument("--model", required=True)
    c.add_argument("--min-cosine", type=float, default=0.99999)
    c.add_argument("--int8", action="store_true",
                   help="int8-activation model: seeded sampled text may differ (reported only)")
    c.add_argument("--texts-reported", action="store_true",
                   help="texts may part at near ties (reported only; ours must produce text)")
    args = ap.parse_args()
    if args.cmd == "worker":
        worker(args.model, args.out)
    else:
        sys.exit(0 if compare(args.ours, args.ref, args.model, args.min_cosine, args.int8,
                             args.texts_reported) else 1)


if __name__ == "__main__":
    main()
