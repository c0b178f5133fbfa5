"""llama-cpp-python's OpenAI-compatible server on two libllama builds: ours and the reference.

    python server_check.py --ours LIBDIR --ref LIBDIR --model M [--requests 200 --parallel 8]

For each library: start `python -m llama_cpp.server` on 127.0.0.1 (LLAMA_CPP_LIB_PATH chooses the
library), ask /v1/completions and /v1/chat/completions with temperature 0, plain and streaming
(SSE), and compare the texts across libraries (streamed text must equal the plain one). On ours,
a bounded load test (--requests, --parallel at a time) must finish without an error and without
the server's resident memory growing by more than --max-growth-mb after a warm-up.
One line per check on stdout; exit status 0 only when all pass.
"""

import argparse
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

PROMPT = "Once upon a time"
MESSAGES = [{"role": "user", "content": "Name a colour."}]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(url, body, stream=False, timeout=300):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        if not stream:
            return json.loads(r.read())
        events = []
        for line in r:
            line = line.decode().strip()
            if line.startswith("data: ") and line != "data: [DONE]":
                events.append(json.loads(line[6:]))
        return events


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


class Server:
    def __init__(self, libdir, model):
        self.port = free_port()
        env = dict(os.environ, LLAMA_CPP_LIB_PATH=libdir)
        self.log = open(os.path.join("/tmp", f"server-{self.port}.log"), "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1",
             "--port", str(self.port), "--n_ctx", "512", "--n_threads", "1", "--verbose", "False"],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; log {self.log.name}")
            try:
                urllib.request.urlopen(self.base + "/v1/models", timeout=2).read()
                return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError("server did not come up in 120 s")

    def texts(self):
        out = {}
        body = {"prompt": PROMPT, "max_tokens": 16, "temperature": 0}
        out["completion"] = post(self.base + "/v1/completions", body)["choices"][0]["text"]
        ev = post(self.base + "/v1/completions", dict(body, stream=True), stream=True)
        out["completion_stream"] = "".join(e["choices"][0].get("text") or "" for e in ev)
        body = {"messages": MESSAGES, "max_tokens": 16, "temperature": 0}
        out["chat"] = post(self.base + "/v1/chat/completions", body)["choices"][0]["message"][
            "content"]
        ev = post(self.base + "/v1/chat/completions", dict(body, stream=True), stream=True)
        out["chat_stream"] = "".join(e["choices"][0]["delta"].get("content") or "" for e in ev)
        return out

    def load(self, n, parallel, warmup):
        def one(i):
            if i % 2:
                body = {"prompt": f"{PROMPT} {i}", "max_tokens": 8, "temperature": 0.7, "seed": i}
                return post(self.base + "/v1/completions", body)["choices"][0]["text"]
            body = {"messages": [{"role": "user", "content": f"Count to {i}."}], "max_tokens": 8,
                    "temperature": 0.7, "seed": i, "stream": i % 4 == 0}
            return post(self.base + "/v1/chat/completions", body, stream=i % 4 == 0)

        errors, rss_after_warmup = 0, None
        with concurrent.futures.ThreadPoolExecutor(parallel) as pool:
            futures = [pool.submit(one, i) for i in range(warmup)]
            for f in futures:
                errors += f.exception() is not None
            rss_after_warmup = rss_kb(self.proc.pid)
            futures = [pool.submit(one, i) for i in range(warmup, n)]
            for f in futures:
                errors += f.exception() is not None
        return errors, rss_after_warmup, rss_kb(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ours", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--parallel", type=int, default=8)
    ap.add_argument("--max-growth-mb", type=float, default=16)
    args = ap.parse_args()
    ok = True

    def check(name, good, detail):
        nonlocal ok
        ok &= bool(good)
        print(f"{'PASS' if good else 'FAIL'} {name}: {detail}", flush=True)

    results = {}
    for side, lib in [("reference", args.ref), ("ours", args.ours)]:
        server = Server(lib, args.model)
        try:
            results[side] = server.texts()
            if side == "ours":
                warm = max(1, args.requests // 5)
                errors, r0, r1 = server.load(args.requests, args.parallel, warm)
                check("load", errors == 0,
                      f"{args.requests} requests, {args.parallel} at a time: {errors} errors")
                growth = (r1 - r0) / 1024
                check("memory", growth <= args.max_growth_mb,
                      f"RSS {r0 / 1024:.1f} MB after {warm} warm-up requests, {r1 / 1024:.1f} MB "
                      f"after all (growth {growth:.1f} MB, bar {args.max_growth_mb} MB)")
        finally:
            server.stop()
    o, r = results["ours"], results["reference"]
    for key in ["completion", "completion_stream", "chat", "chat_stream"]:
        check(key, o[key] == r[key], f"ours {o[key]!r} | reference {r[key]!r}")
    check("stream=plain", o["completion"] == o["completion_stream"] and o["chat"] == o["chat_stream"],
          "streamed text equals the plain response on ours")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
