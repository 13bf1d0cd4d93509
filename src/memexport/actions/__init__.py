"""Actions: what the process does when Alertmanager tells it an alert fired (docs/actions.md).

Thresholds stay in the alert rules; the process only reacts, through an opt-in webhook
receiver (``start_actions``), with actions that are rate-limited, time-boxed and exported:
``evidence`` (tracemalloc diff, component table, RSS ledger, thread stacks, optional
referrers and memray capture, written to a bounded directory), ``shed`` (shrink caches, trim
histories, reap idle pool resources, run cleanups, ``gc.collect()``, ``malloc_trim(0)``), and
the user's own (``@memexport.action``).
"""

from memexport.actions.catalog import ACTIONS, Action, ActionContext, ActionSet, Match, action
from memexport.actions.evidence import evidence
from memexport.actions.limits import Limits
from memexport.actions.payload import Alert, Notification, PayloadError, parse
from memexport.actions.sections import SECTIONS
from memexport.actions.service import ActionService, start_actions
from memexport.actions.shedding import shed
from memexport.actions.shrink import reaper, shrinker, trimmer
from memexport.actions.store import EvidenceStore

__all__ = [
    "ACTIONS",
    "SECTIONS",
    "Action",
    "ActionContext",
    "ActionService",
    "ActionSet",
    "Alert",
    "EvidenceStore",
    "Limits",
    "Match",
    "Notification",
    "PayloadError",
    "action",
    "evidence",
    "parse",
    "reaper",
    "shed",
    "shrinker",
    "start_actions",
    "trimmer",
]
