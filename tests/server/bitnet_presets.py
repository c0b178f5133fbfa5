"""pytest plugin loaded into a copy of llama-server's own test suite (tools/server/tests of the
pinned sdist) by tests/server/suite.py. It changes nothing in the tests themselves:

- the suite's model presets download from a hub this machine cannot reach; a preset whose hub
  model has a local stand-in (BITNET_SRV_MODEL, a bitnet-rs fixture) gets it as `--model`, any
  other hub model makes that one test skip with the reason "hub model ... not available";
- ServerPreset.load_all (the session-start download of every preset) does nothing;
- every test's outcome and reason is appended as one JSON line to BITNET_SRV_RESULTS.

Needs the copied suite's directory on sys.path (its `utils` module).
"""

import json
import os

import pytest
import utils

MODEL = os.environ["BITNET_SRV_MODEL"]

# (hub repo, hub file) of a preset -> the local file that stands in for it. The suite's text
# model (stories260K) and its embedding model (bge-small) both become our fixture: the text it
# generates is not the trained model's, so tests that match trained text fail (on the reference
# libllama with the same fixture too, which suite.py checks).
LOCAL = {
    ("ggml-org/test-model-stories260K", None): MODEL,
    ("ggml-org/models", "bert-bge-small/ggml-model-f16.gguf"): MODEL,
}

# What a hub file declares in its metadata and the stand-in does not, as server arguments
# (attribute -> value), applied where the test leaves them unset. bge-small is a sentence
# embedding model that pools its first ([CLS]) token, and llama.cpp's converter writes that
# into the file (`bert.pooling_type`); our fixture is a causal LM without a pooling type, so
# without this every test that relies on the file's own pooling would get llama-server's 400
# "Pooling type 'none' is not OAI compatible" instead of exercising the embedding path.
DECLARED = {
    ("ggml-org/models", "bert-bge-small/ggml-model-f16.gguf"): {"pooling": "cls"},
}

# BITNET_SRV_THREADS (suite.py --threads): llama-server's --threads where a test leaves it
# unset (llama-server's default: every core). The thread count changes no result; it is there
# for a loaded machine, where ggml's spinning worker threads slow the reference down badly.
THREADS = int(os.environ.get("BITNET_SRV_THREADS") or 0)

_start = utils.ServerProcess.start


def _start_local(self, *args, **kwargs):
    hub = (self.model_hf_repo, self.model_hf_file)
    if hub != (None, None):
        if hub not in LOCAL:
            name = "/".join(part for part in hub if part)
            pytest.skip(f"hub model {name} not available (no network; no local stand-in)")
        self.model_file = LOCAL[hub]
        for attr, value in DECLARED.get(hub, {}).items():
            if getattr(self, attr) is None:
                setattr(self, attr, value)
    if THREADS and self.n_threads is None:
        self.n_threads = THREADS
        self.model_hf_repo = None
        self.model_hf_file = None
    return _start(self, *args, **kwargs)


utils.ServerProcess.start = _start_local
utils.ServerPreset.load_all = staticmethod(lambda: None)


def _reason(report):
    if report.passed:
        return ""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # a skip: (file, line, reason)
        return str(longrepr[2])
    crash = getattr(longrepr, "reprcrash", None)
    if crash is not None:
        return crash.message
    return str(longrepr).strip().splitlines()[-1] if str(longrepr).strip() else ""


_results = {}


def pytest_runtest_logreport(report):
    # One outcome per test: a failing setup or teardown counts as the test's failure ("error").
    outcome = report.outcome
    if report.when != "call" and report.failed:
        outcome = "error"
    elif report.when != "call" and not report.skipped:
        return
    if report.nodeid in _results and _results[report.nodeid]["outcome"] != "passed":
        return
    _results[report.nodeid] = {"id": report.nodeid, "outcome": outcome, "reason": _reason(report)}
    # Appended as it comes (a run cut short keeps what it did); a later line for the same id
    # (a failing teardown) replaces the earlier one when read.
    with open(os.environ["BITNET_SRV_RESULTS"], "a", encoding="utf-8") as out:
        out.write(json.dumps(_results[report.nodeid]) + "\n")
