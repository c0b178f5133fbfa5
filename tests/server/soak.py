"""Soak test of llama-server on bitnet-rs's libllama: N requests (default 500), C at a time
(default 16), on loopback, mixing /completion and /v1/chat/completions, plain and streamed, and
clients that hang up in the middle of a stream.

    python tests/server/soak.py --bin DIR --ours DIR --model FILE [-n 500] [-c 16] [--np 4]

Passes when: every request that was not cut off on purpose completed (status 200, a final
stop/finish event, a stop reason, at most n_predict tokens), no error of any other kind, the
server is alive and healthy at the end, its RSS grew by at most --max-growth-mb (default 32) from
the end of warm-up (the first 10% of the requests) to the end, and the whole run stayed within
--max-seconds. Prints one summary line of figures.
"""

import argparse
import concurrent.futures
import json
import os
import random
import sys
import tempfile
import threading
import time

import requests

from srv import Server, add_common_args

WORDS = ("the quick brown fox jumps over a lazy dog while seven small birds sing about "
         "rivers mountains cities numbers stories and questions").split()

KINDS = ["completion", "chat", "completion_stream", "chat_stream", "completion_cut",
         "chat_cut", "completion", "completion_stream"]


def make(i, rng):
    kind = KINDS[i % len(KINDS)]
    prompt = " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 120)))
    n = rng.randint(4, 48)
    if kind.startswith("chat"):
        body = {"messages": [{"role": "system", "content": "You answer briefly."},
                             {"role": "user", "content": prompt}],
                "max_tokens": n, "temperature": rng.choice([0, 0.8]), "seed": i}
        return kind, "/v1/chat/completions", body, n
    body = {"prompt": prompt, "n_predict": n, "temperature": rng.choice([0, 0.8]), "seed": i,
            "cache_prompt": rng.random() < 0.5}
    return kind, "/completion", body, n


def check_plain(kind, r, n):
    if r.status_code != 200:
        return f"status {r.status_code}: {r.text[:200]}"
    body = r.json()
    if kind == "chat":
        choice = body["choices"][0]
        if choice["finish_reason"] not in ("stop", "length"):
            return f"finish_reason {choice['finish_reason']!r}"
        if not 0 <= body["usage"]["completion_tokens"] <= n:
            return f"completion_tokens {body['usage']['completion_tokens']} for max {n}"
        return None
    if not body.get("stop") or body.get("stop_type") not in ("eos", "limit", "word"):
        return f"stop {body.get('stop')!r} stop_type {body.get('stop_type')!r}"
    if not 0 <= body["tokens_predicted"] <= n:
        return f"tokens_predicted {body['tokens_predicted']} for n_predict {n}"
    return None


def run_stream(kind, r, n, cut):
    """Reads a stream; hangs up after 2 events when cut. None when complete, else the problem."""
    if r.status_code != 200:
        return f"status {r.status_code}: {r.text[:200]}"
    events, final, done = 0, None, False
    for raw in r.iter_lines():
        line = raw.decode("utf-8")
        if line == "data: [DONE]":
            done = True
            continue
        if not line.startswith("data: "):
            continue
        event = json.loads(line[6:])
        if "error" in event:
            return f"error event {event['error']}"
        events += 1
        if cut and events == 2:
            r.close()
            return None
        if event.get("stop") or any(c.get("finish_reason") for c in event.get("choices", [])):
            final = event
    if cut:
        return None  # finished before the hang-up (a very short answer): fine
    if final is None:
        return "stream ended without a final event"
    if kind.startswith("chat"):
        if not done:
            return "chat stream without [DONE]"
        reason = final["choices"][0]["finish_reason"]
        if reason not in ("stop", "length"):
            return f"finish_reason {reason!r}"
    elif final.get("stop_type") not in ("eos", "limit", "word"):
        return f"stop_type {final.get('stop_type')!r}"
    elif not 0 <= final.get("tokens_predicted", 0) <= n:
        return f"tokens_predicted {final.get('tokens_predicted')} for n_predict {n}"
    return None


def one(server, i, seed):
    rng = random.Random(seed * 100003 + i)
    kind, path, body, n = make(i, rng)
    streamed = "stream" in kind or "cut" in kind
    try:
        r = requests.post(server.url + path, json={**body, "stream": streamed},
                          stream=streamed, timeout=120)
        problem = run_stream(kind, r, n, "cut" in kind) if streamed else check_plain(kind, r, n)
    except (requests.RequestException, ValueError, KeyError) as e:
        problem = f"{type(e).__name__}: {e}"
    return kind, problem


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    add_common_args(ap)
    ap.add_argument("-n", type=int, default=500, help="requests (default 500)")
    ap.add_argument("-c", type=int, default=16, help="at a time (default 16)")
    ap.add_argument("--np", type=int, default=4, help="llama-server --parallel (default 4)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-growth-mb", type=float, default=32.0)
    ap.add_argument("--max-seconds", type=float, default=1800.0)
    ap.add_argument("--cache-ram", type=int, default=None,
                    help="llama-server --cache-ram MiB (its prompt cache of idle slots' states, "
                         "8192 by default: RSS grows with it by design; 0 turns it off)")
    ap.add_argument("--log", default=None, help="llama-server's log (default: a temporary file)")
    args = ap.parse_args()
    log = args.log or os.path.join(tempfile.mkdtemp(prefix="bitnet-srv-soak-"), "server.log")

    warm = max(1, args.n // 10)
    problems, kinds, cut, not_sent = [], {}, 0, []
    lock = threading.Lock()
    rss = {}
    started = time.time()
    with Server(args.bin, args.model, lib=args.ours, log=log, threads=args.threads,
                ctx=512 * args.np,
                args=["-np", args.np, "-cb"]
                + ([] if args.cache_ram is None else ["--cache-ram", args.cache_ram])) as server:
        rss["start"] = server.rss_kb()

        deadline = started + args.max_seconds
        done = [0]

        def task(i):
            # Past the time bound no new request is sent (the run then fails, with the
            # figures of what it did): the pool empties instead of hanging on to the server.
            if time.time() > deadline:
                with lock:
                    not_sent.append(i)
                return
            kind, problem = one(server, i, args.seed)
            with lock:
                kinds[kind] = kinds.get(kind, 0) + 1
                if problem:
                    problems.append((i, kind, problem))
                done[0] += 1
                if done[0] % 50 == 0:
                    print(f"soak: {done[0]} done, {time.time() - started:.0f} s, "
                          f"{len(problems)} problems, RSS {server.rss_kb() / 1024:.1f} MB",
                          flush=True)

        with concurrent.futures.ThreadPoolExecutor(args.c) as pool:
            list(pool.map(task, range(warm)))
            rss["warm"] = server.rss_kb()
            list(pool.map(task, range(warm, args.n)))
        rss["end"] = server.rss_kb()
        healthy = requests.get(server.url + "/health", timeout=10).status_code == 200
        alive = server.alive()
        code = server.stop()
    elapsed = time.time() - started
    cut = sum(v for k, v in kinds.items() if "cut" in k)
    growth_mb = (rss["end"] - rss["warm"]) / 1024
    if not_sent:
        print(f"soak: {len(not_sent)} of {args.n} requests not sent: past --max-seconds "
              f"{args.max_seconds:.0f}")
    print(f"soak: {args.n - len(not_sent)} requests, {args.c} at a time, -np {args.np}, "
          f"{elapsed:.0f} s; "
          f"kinds {dict(sorted(kinds.items()))}; {cut} cut off on purpose; "
          f"{len(problems)} problems; RSS start {rss['start'] / 1024:.1f} MB, after warm-up "
          f"{rss['warm'] / 1024:.1f} MB, end {rss['end'] / 1024:.1f} MB (growth "
          f"{growth_mb:+.1f} MB); healthy {healthy}; alive {alive}; exit on SIGTERM {code}")
    for i, kind, problem in problems[:20]:
        print(f"  request {i} ({kind}): {problem}")
    ok = (not problems and not not_sent and healthy and alive and code == 0
          and growth_mb <= args.max_growth_mb)
    print(f"soak: {'OK' if ok else 'FAILED'} (server log {log})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
