"""asyncio task rules (opt-in: ``memexport.integrations.asyncio_tasks.track_asyncio_tasks()``).

Series are per loop name and coroutine name (``loop``, ``coroutine`` labels; the rarest names
share ``coroutine="__overflow__"``), never per task. They are per-process gauges: summed over
the workers of a multiprocess target (the oldest age: the oldest of any worker), duplicates of
a second exporter collapsed first, OpenTelemetry copies (``memexport_coroutine``) dropped.
"""

from __future__ import annotations

from memexport.assets.rules.common import Q, Rule

__all__ = ["groups"]

PENDING = "coroutine:memexport_asyncio_tasks:sum"
OLDEST = "coroutine:memexport_asyncio_task_oldest_age_seconds:max"


def _recording(q: Q) -> list[Rule]:
    pid, by = q.labels.pid, ("loop", "coroutine")
    tasks = q.m("memexport_asyncio_tasks", 'coroutine!=""')
    age = q.m("memexport_asyncio_task_oldest_age_seconds", 'coroutine!=""')
    return [
        q.record(PENDING, f"sum {q.by(*by)} (\n  max {q.by(pid, *by)} ({tasks})\n)",
                 "Pending tasks of each coroutine of the target, over its workers."),
        q.record(OLDEST, f"max {q.by(*by)} ({age})",
                 "How long the oldest pending task of each coroutine has been pending."),
    ]


def _alerts(q: Q) -> list[Rule]:
    k = q.cfg.tasks
    on = q.on("loop", "coroutine")
    w = q.d(k.window)
    return [q.alert("MemexportAsyncioTasksLeaking", "warning", f"""
{PENDING}
  > {on}
max_over_time({PENDING}[{w}] offset {w})
  and {on}
deriv({PENDING}[{w}]) > 0
  and {on}
{OLDEST} > {q.s(k.oldest_age)}
""", area="agents", for_=k.for_, keep=k.keep_firing_for,
        summary="Pending asyncio tasks rise steadily (task leak).",
        description=f"{{{{ $value }}}} {{{{ $labels.coroutine }}}} tasks are pending in loop "
                    f"{{{{ $labels.loop }}}} on {q.target_text()} and keep rising: they are "
                    f"started and never finish.",
        comment="Pending tasks of one coroutine keep making new highs over the window before "
                "while trending up, and the oldest has been pending for long: tasks are "
                "started and never finish (nothing awaits or cancels them). A burst ramps up "
                "and drains; a long-lived server task stays at one: both silent.")]


def groups(q: Q) -> list[dict[str, object]]:
    prefix = q.cfg.group_prefix
    return [
        {"name": f"{prefix}-tasks.rules", "rules": _recording(q)},
        {"name": f"{prefix}-tasks.alerts", "rules": _alerts(q)},
    ]
