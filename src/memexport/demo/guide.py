# ruff: noqa
# mypy: ignore-errors
"""The classes of memory-cleanup-guide.txt (the shared seed), copied verbatim: the one copy
inside the package that the demo, the bench and (where the seed is not beside the checkout)
the tests use, as realistic user code to instrument. Bugs and all: never "fix" them here.
"""
import gc
import os
import sys
import threading
import tracemalloc
import weakref
from collections import OrderedDict, deque
from contextlib import contextmanager
from datetime import datetime, timedelta
from queue import Empty, Queue
from typing import Any, Callable, Dict, List, Tuple

import psutil


class MemoryEfficientConversationManager:
    def __init__(self, max_history_length: int = 100, summary_threshold: int = 50):
        self.max_history_length = max_history_length
        self.summary_threshold = summary_threshold
        self.conversation_history = deque(maxlen=max_history_length)
        self.summaries = []

    def add_message(self, message: Dict[str, Any]):
        """Add a message to conversation history with automatic cleanup"""
        self.conversation_history.append(message)
        # Create summary when threshold is reached
        if len(self.conversation_history) >= self.summary_threshold:
            self._create_summary()

    def _create_summary(self):
        """Create a summary of older messages"""
        messages_to_summarize = list(self.conversation_history)[: self.summary_threshold // 2]
        # In production, use an LLM to create actual summaries
        summary = {
            "type": "summary",
            "message_count": len(messages_to_summarize),
            "timestamp": messages_to_summarize[0]["timestamp"],
            "key_points": self._extract_key_points(messages_to_summarize),
        }
        self.summaries.append(summary)
        # Remove summarized messages
        for _ in range(len(messages_to_summarize)):
            self.conversation_history.popleft()

    def _extract_key_points(self, messages: List[Dict]) -> List[str]:
        """Extract key points from messages (simplified version)"""
        return [msg.get("content", "")[:50] + "..." for msg in messages[-3:]]

    def get_context(self, last_n: int = 10) -> List[Dict]:
        """Get recent context including summaries"""
        context = []
        if self.summaries:
            context.extend(self.summaries[-2:])  # Last 2 summaries
        recent_messages = list(self.conversation_history)[-last_n:]
        context.extend(recent_messages)
        return context

    def cleanup(self):
        """Explicit cleanup method"""
        self.conversation_history.clear()
        self.summaries.clear()


class MemoryManagedAgent:
    def __init__(self, name: str, memory_limit_mb: int = 100):
        self.name = name
        self.memory_limit_mb = memory_limit_mb
        self.created_at = datetime.now()
        self.last_cleanup = datetime.now()
        self._memory_store = {}
        self._weak_refs = weakref.WeakValueDictionary()

    def store_memory(self, key: str, value: Any, weak: bool = False):
        """Store data with option for weak references"""
        if weak:
            self._weak_refs[key] = value
        else:
            self._memory_store[key] = value
        if self._estimate_memory_usage() > self.memory_limit_mb:
            self._cleanup_old_memories()

    def _estimate_memory_usage(self) -> float:
        """Estimate memory usage in MB"""
        total_size = 0
        for obj in self._memory_store.values():
            total_size += sys.getsizeof(obj)
        return total_size / (1024 * 1024)

    def _cleanup_old_memories(self):
        """Remove old or less important memories"""
        if hasattr(self, "memory_importance"):
            sorted_keys = sorted(
                self._memory_store.keys(), key=lambda k: self.memory_importance.get(k, 0)
            )
        else:
            sorted_keys = list(self._memory_store.keys())
        remove_count = len(sorted_keys) // 5
        for key in sorted_keys[:remove_count]:
            del self._memory_store[key]
        gc.collect()
        self.last_cleanup = datetime.now()

    def periodic_cleanup(self):
        """Run periodic cleanup tasks"""
        if datetime.now() - self.last_cleanup > timedelta(minutes=30):
            self._cleanup_old_memories()
            gc.collect()


class ResourcePool:
    def __init__(self, factory, max_size: int = 10, cleanup_func=None):
        self.factory = factory
        self.max_size = max_size
        self.cleanup_func = cleanup_func
        self.pool = Queue(maxsize=max_size)
        self.size = 0
        self.lock = threading.Lock()

    @contextmanager
    def acquire(self, timeout: float = 30):
        """Acquire a resource from the pool"""
        resource = None
        try:
            try:
                resource = self.pool.get(timeout=timeout)
            except Empty:
                with self.lock:
                    if self.size < self.max_size:
                        resource = self.factory()
                        self.size += 1
                    else:
                        raise TimeoutError("Resource pool exhausted")
            yield resource
        finally:
            if resource is not None:
                try:
                    self.pool.put_nowait(resource)
                except:  # noqa: E722  (as in the guide)
                    if self.cleanup_func:
                        self.cleanup_func(resource)
                    with self.lock:
                        self.size -= 1

    def cleanup_all(self):
        """Clean up all resources in the pool"""
        while not self.pool.empty():
            try:
                resource = self.pool.get_nowait()
                if self.cleanup_func:
                    self.cleanup_func(resource)
            except Empty:
                break
        self.size = 0


class MemoryBoundedLRUCache:
    def __init__(self, max_memory_mb: int = 50, max_items: int = 1000):
        self.max_memory_mb = max_memory_mb
        self.max_items = max_items
        self.cache = OrderedDict()
        self.memory_usage = 0

    def get(self, key):
        """Get item from cache"""
        if key in self.cache:
            self.cache.move_to_end(key)
            return self.cache[key]
        return None

    def put(self, key, value):
        """Put item in cache with memory management"""
        value_size = sys.getsizeof(value)
        while (
            self.memory_usage + value_size > self.max_memory_mb * 1024 * 1024
            or len(self.cache) >= self.max_items
        ):
            if not self.cache:
                break
            oldest_key = next(iter(self.cache))
            oldest_value = self.cache.pop(oldest_key)
            self.memory_usage -= sys.getsizeof(oldest_value)
        self.cache[key] = value
        self.memory_usage += value_size

    def clear(self):
        """Clear the cache"""
        self.cache.clear()
        self.memory_usage = 0


class MemoryMonitor:
    def __init__(self, alert_threshold_percent: float = 80):
        self.alert_threshold_percent = alert_threshold_percent
        self.process = psutil.Process(os.getpid())
        self.memory_history = []

    def get_memory_info(self) -> Dict[str, Any]:
        memory_info = self.process.memory_info()
        memory_percent = self.process.memory_percent()
        info = {
            "timestamp": datetime.now(),
            "rss_mb": memory_info.rss / 1024 / 1024,
            "vms_mb": memory_info.vms / 1024 / 1024,
            "percent": memory_percent,
            "available_mb": psutil.virtual_memory().available / 1024 / 1024,
        }
        self.memory_history.append(info)
        cutoff = datetime.now() - timedelta(hours=1)
        self.memory_history = [h for h in self.memory_history if h["timestamp"] > cutoff]
        return info

    def check_memory_health(self) -> Tuple[bool, str]:
        info = self.get_memory_info()
        if info["percent"] > self.alert_threshold_percent:
            return False, f"Memory usage critical: {info['percent']:.1f}%"
        if len(self.memory_history) > 10:
            recent = self.memory_history[-10:]
            growth_rate = (recent[-1]["rss_mb"] - recent[0]["rss_mb"]) / len(recent)
            if growth_rate > 10:
                return False, f"Memory growing rapidly: {growth_rate:.1f}MB/check"
        return True, "Memory usage normal"


class AutomaticMemoryManager:
    """As in the guide, minus the `schedule` loop (the guide never runs it)."""

    def __init__(self):
        self.cleanup_callbacks: List[Callable] = []
        self.last_gc_stats = None

    def register_cleanup(self, callback: Callable):
        self.cleanup_callbacks.append(callback)

    def aggressive_cleanup(self):
        for callback in self.cleanup_callbacks:
            try:
                callback()
            except Exception as e:
                print(f"Cleanup callback failed: {e}")
        gc.collect(2)
        self.last_gc_stats = {
            "collected": sum(gc.get_count()),
            "uncollectable": len(gc.garbage),
            "timestamp": datetime.now(),
        }
        return self.last_gc_stats


class ManagedAgentSession:
    def __init__(self, agent_factory):
        self.agent_factory = agent_factory
        self.agents = []

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_val, exc_tb):
        for agent in self.agents:
            agent.cleanup()
        self.agents.clear()
        gc.collect()

    def create_agent(self, *args, **kwargs):
        agent = self.agent_factory(*args, **kwargs)
        self.agents.append(agent)
        return agent


class MemoryBudgetManager:
    def __init__(self, total_budget_mb: int = 1000):
        self.total_budget_mb = total_budget_mb
        self.allocations = {}

    def allocate(self, component: str, budget_mb: int) -> bool:
        current_allocated = sum(self.allocations.values())
        if current_allocated + budget_mb > self.total_budget_mb:
            return False
        self.allocations[component] = budget_mb
        return True

    def check_usage(self, component: str, current_usage_mb: float) -> bool:
        if component not in self.allocations:
            return False
        return current_usage_mb <= self.allocations[component]


class MemoryProfiler:
    def __init__(self):
        self.snapshots = []

    def start_profiling(self):
        tracemalloc.start()
        self.take_snapshot("start")

    def take_snapshot(self, label: str):
        snapshot = tracemalloc.take_snapshot()
        self.snapshots.append((label, snapshot))

    def get_top_allocations(self, limit: int = 10) -> List[Tuple[str, float]]:
        if len(self.snapshots) < 2:
            return []
        _, snapshot1 = self.snapshots[-2]
        _, snapshot2 = self.snapshots[-1]
        stats = snapshot2.compare_to(snapshot1, "lineno")
        return [
            (f"{s.traceback[0].filename}:{s.traceback[0].lineno}", s.size_diff / 1024 / 1024)
            for s in stats[:limit]
        ]

    def stop_profiling(self):
        tracemalloc.stop()
        self.snapshots.clear()
