"""Stateful operation-sequence fuzzing of the WS-Man shell handlers (seqfuzz.py).

Replays tests/hostile/seqfuzz-corpus first, then new seeds for
WINRMD_SEQFUZZ_SECONDS (default 60).  `make fuzz-seq` runs it for long
against build-san; `make fuzz-seq-cov` measures the coverage it reaches.
"""
import os
import tempfile
import time

import pytest

import seqfuzz


def _budget():
    return float(os.environ.get("WINRMD_SEQFUZZ_SECONDS", "60"))


def test_seqfuzz(winrmd, users, other_user, tmp_path):
    d = winrmd(winrs={"MaxShellsPerUser": "30", "IdleTimeout": "120000"})
    pair = [users.admin, other_user]
    worker = d.worker_pid()
    assert worker, "no worker process"
    avoid = seqfuzz.avoid_set()
    save = os.environ.get("WINRMD_SEQFUZZ_SAVE") == "1"
    seen = set()
    stats = {"seeds": 0, "ops": 0}
    t0 = time.monotonic()

    def one(seed, n_ops):
        try:
            r = seqfuzz.run_seed(d, pair, seed, worker, n_ops=n_ops, avoid=avoid)
        except seqfuzz.FuzzFailure as e:
            out = os.environ.get("WINRMD_SEQFUZZ_OUT") or os.path.join(tempfile.gettempdir(), "winrmd-seqfuzz")
            os.makedirs(out, exist_ok=True)
            path = os.path.join(out,
                                "seqfuzz-failure-%d.txt" % seed)
            report = seqfuzz.failure_report(e, d, path)
        else:
            report = None
        if report:
            pytest.fail(report, pytrace=False)
        stats["seeds"] += 1
        stats["ops"] += r.ops_done
        new = r.outcomes - seen
        seen.update(r.outcomes)
        return r, new

    corpus = seqfuzz.corpus_entries()
    for seed, n_ops in corpus:
        one(seed, n_ops)
    replay = time.monotonic() - t0
    first = int(os.environ.get("WINRMD_SEQFUZZ_SEED") or int(time.time() * 1000) % 10**9)
    seed = first
    added = 0
    deadline = t0 + _budget()
    while time.monotonic() < deadline:
        r, new = one(seed, 40)
        if new and save:
            seqfuzz.save_corpus_entry(r, new)
            added += 1
        seed += 1
    took = time.monotonic() - t0
    print("\nseqfuzz: corpus %d seeds replayed in %.1fs; new seeds %d..%d; %d seeds, %d ops in %.1fs "
          "(%.1f ops/s); %d distinct outcomes; %d added to the corpus; avoid=%s"
          % (len(corpus), replay, first, seed - 1, stats["seeds"], stats["ops"], took,
             stats["ops"] / max(took, 0.001), len(seen), added, ",".join(sorted(avoid)) or "-"))
    assert stats["seeds"] > 0
