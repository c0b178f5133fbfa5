"""Starting and stopping llama-server on one libllama or the other, shared by the drivers in
tests/server/ (parity.py, soak.py, bad_input.py, browser.py).

A `Server` runs `<bin>/llama-server -m MODEL ...` with LD_LIBRARY_PATH=<lib> when lib is given
(our libllama.so.0 in front of the tools' RUNPATH) or without it (the reference libllama the
tools were built with), on 127.0.0.1, and waits for /health.
"""

import json
import os
import socket
import subprocess
import time

import requests


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def add_common_args(ap):
    """The arguments every driver takes."""
    ap.add_argument("--bin", required=True, help="directory with llama-server (build_tools.sh bin=)")
    ap.add_argument("--ours", required=True, help="directory with our libllama.so.0")
    ap.add_argument("--model", required=True, help="GGUF model to serve")
    ap.add_argument("--threads", type=int, default=2, help="llama-server --threads (default 2)")


class Server:
    def __init__(self, bin_dir, model, lib=None, args=(), log=None, threads=2, ctx=2048):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [os.path.join(bin_dir, "llama-server"), "-m", model, "--host", "127.0.0.1",
                    "--port", str(self.port), "--threads", str(threads), "--ctx-size", str(ctx),
                    "--no-warmup", *map(str, args)]
        self.env = dict(os.environ)
        self.env.pop("LD_LIBRARY_PATH", None)
        if lib:
            self.env["LD_LIBRARY_PATH"] = lib
        self.log_path = log
        self.proc = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    def start(self, timeout=120):
        out = open(self.log_path, "w") if self.log_path else subprocess.DEVNULL
        self.proc = subprocess.Popen(self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited with {self.proc.returncode} at start "
                                   f"(log: {self.log_path})")
            try:
                if requests.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"llama-server not healthy after {timeout} s")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def rss_kb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def stop(self):
        """Stops the server; returns its exit status (SIGTERM: 0 expected from llama-server)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def post(self, path, body, timeout=300):
        return requests.post(self.url + path, json=body, timeout=timeout)

    def stream(self, path, body, timeout=300):
        """A streamed /completion or /v1/chat/completions: its concatenated text, the last
        event (finish state: stop/limit reason) and the tokens' probabilities when the body
        asked for them (`token_probs` of every event, in order)."""
        r = requests.post(self.url + path, json={**body, "stream": True}, stream=True,
                          timeout=timeout)
        r.raise_for_status()
        text, probs, last = [], [], None
        for raw in r.iter_lines():
            line = raw.decode("utf-8")
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            event = json.loads(line[6:])
            last = event
            if "content" in event:  # /completion
                text.append(event["content"])
            for choice in event.get("choices", []):
                delta = choice.get("delta", {})
                if delta.get("content"):
                    text.append(delta["content"])
            probs += token_probs(event)
        return "".join(text), last, probs


def completion_text(body):
    """The text of a non-streamed /completion or /v1/chat/completions answer."""
    if "content" in body:
        return body["content"]
    return body["choices"][0]["message"]["content"] or ""


def token_probs(body):
    """[(token, [(candidate, logprob), ...])] of an answer or stream event that asked for
    probabilities (/completion: `n_probs`; /v1/chat/completions: `logprobs` and
    `top_logprobs`); [] when it did not."""
    tokens = list(body.get("completion_probabilities") or [])
    for choice in body.get("choices", []):
        tokens += (choice.get("logprobs") or {}).get("content") or []
    return [(t["token"], [(c["token"], c["logprob"]) for c in t["top_logprobs"]])
            for t in tokens]
