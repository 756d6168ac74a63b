"""Token counting: the offline encodings against stock tiktoken, and incremental counting.

Run from the repo root: .venv/bin/python bench/tokens.py

* cold start: a fresh interpreter builds ``o200k_base`` and encodes one word —
  ours from the shipped file in memory (``wippy_agents.llm.tokens``) vs stock
  ``tiktoken.get_encoding`` reading the same file from its cache directory
  (which the old code filled; the figure tiktoken gives at best, offline).
  Median of 3 subprocesses each.
* growing history: counting the prompt of each turn of a 200-turn conversation
  with ``TokenCounter.count_messages`` (only new messages encoded) vs encoding
  the whole history again every turn with tiktoken. Same run, same texts.

Prints the figures and same-run ratios.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OURS = ("import time; t = time.perf_counter(); from wippy_agents.llm.tokens import encoding_for_model; "
        "encoding_for_model('gpt-4o').encode('x'); print(time.perf_counter() - t)")
STOCK = ("import time; t = time.perf_counter(); import tiktoken; tiktoken.get_encoding('o200k_base').encode('x'); "
         "print(time.perf_counter() - t)")


def cold(code: str, env: dict[str, str]) -> float:
    runs = [float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                                 check=True, cwd=ROOT).stdout) for _ in range(3)]
    return statistics.median(runs)


def main() -> None:
    cache = Path(tempfile.mkdtemp())
    try:
        url = "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken"
        shutil.copyfile(ROOT / "wippy_agents/llm/encodings/o200k_base.tiktoken",
                        cache / hashlib.sha1(url.encode()).hexdigest())
        base = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")}
        ours = cold(OURS, base)
        stock = cold(STOCK, {**base, "TIKTOKEN_CACHE_DIR": str(cache)})
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"cold start (build o200k_base + one encode): wippy {ours * 1000:.0f} ms, "
          f"stock tiktoken from its cache {stock * 1000:.0f} ms, ratio {ours / stock:.2f}x")

    from wippy_agents.llm import Message, TokenCounter
    from wippy_agents.llm.tokens import encoding_for_model

    texts = [f"turn {i}: " + "the quick brown fox jumps over the lazy dog " * 20 for i in range(200)]
    counter = TokenCounter("gpt-4o")
    enc = encoding_for_model("gpt-4o")  # built once, outside both timings
    history: list[Message] = []
    t = time.perf_counter()
    for text in texts:
        history.append(Message.user(text))
        counter.count_messages(history)
    incremental = time.perf_counter() - t
    t = time.perf_counter()
    for n in range(1, len(texts) + 1):
        sum(len(enc.encode_ordinary(x)) for x in texts[:n])
    full = time.perf_counter() - t
    print(f"200-turn history, count every turn's prompt: incremental {incremental * 1000:.1f} ms, "
          f"re-encode everything {full * 1000:.1f} ms, incremental {full / incremental:.0f}x faster")


if __name__ == "__main__":
    main()
