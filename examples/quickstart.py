"""memexport quickstart: a small agent app, instrumented, serving /metrics until stopped.

Run it with `python examples/quickstart.py` (or `--seconds 30` to stop by itself), then open
http://127.0.0.1:9464/metrics (MEMEXPORT_PORT / MEMEXPORT_ADDR change the port / address).
Needs `pip install "memexport[cachetools]"`.
"""

import argparse
import functools
import hashlib
import itertools
import time

import cachetools

import memexport

# Stand-ins for your own classes: the memory-cleanup guide's pool and conversation manager.
from memexport.demo.guide import MemoryEfficientConversationManager, ResourcePool


def embed_text(text: str) -> tuple[float, ...]:
    """Stands in for an embedding call."""
    return tuple(b / 255 for b in hashlib.sha256(text.encode()).digest())


def make_client() -> dict:
    """Stands in for an API client: a little state per connection."""
    return {"buffer": bytearray(16 * 1024), "calls": 0}


memexport.start_http_server()                  # /metrics on 127.0.0.1:9464 + process collector
memexport.budget(2 * 2**30)                    # this process should stay under 2 GiB

responses = memexport.cache(cachetools.LRUCache(maxsize=10_000), name="llm_responses")
embed = memexport.cache(functools.lru_cache(maxsize=4096)(embed_text), name="embeddings")
clients = memexport.pool(ResourcePool(make_client, max_size=10), name="llm_clients")
history = memexport.conversation(MemoryEfficientConversationManager(), name="support")

parser = argparse.ArgumentParser()
parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
args = parser.parse_args()
stop_at = None if args.seconds is None else time.monotonic() + args.seconds

for turn in itertools.count():                 # the app's work: one request every 50 ms
    question = f"question {turn % 50}"         # 50 distinct questions: hits after the first 50
    answer = responses.get(question)
    if answer is None:
        with clients.acquire(timeout=0.1) as client:
            client["calls"] += 1
            answer = f"answer to {question}"
        responses[question] = answer
    embed(question)
    history.add_message({"role": "user", "content": question, "timestamp": time.time()})
    history.add_message({"role": "assistant", "content": answer, "timestamp": time.time()})
    if stop_at is not None and time.monotonic() >= stop_at:
        break
    time.sleep(0.05)
