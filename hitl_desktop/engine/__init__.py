"""The durable run engine: tasks, steps and waitpoint tokens that survive a kill. No Qt here.

from hitl_desktop.engine import Engine, task, wait, TokenResult

@task("refund-invoice")
async def refund_invoice(ctx, payload):
    quote = await ctx.step("quote", compute_quote, payload)
    token = await wait.create_token(timeout="10m", tags=["refund"])
    result = await wait.for_token(token)       # the run is suspended here
    ...
"""

from ..units.urls import redact_url
from . import wait
from .context import MAX_TAG_LENGTH, MAX_TAGS, RunContext
from .engine import Engine, migrate_store
from .errors import (
    DecisionRefused,
    EngineError,
    EngineNotStarted,
    InvalidDuration,
    NotInRun,
    NotJSON,
    OutputRefused,
    PayloadTooLarge,
    ReplayMismatch,
    RunNotFound,
    StepFailed,
    StoreNotUsable,
    TaskNotFound,
    TokenAlreadyFinished,
    TokenExpired,
    TokenNotFound,
    TokenTimeoutError,
)
from .events import (
    Event,
    EventStream,
    RunCanceled,
    RunCompleted,
    RunFailed,
    RunPaused,
    RunResumed,
    RunTriggered,
    TokenCompleted,
    TokenReviewed,
    TokenTimedOut,
)
from .models import (
    AuditBreak,
    AuditEntry,
    AuditReport,
    GroupResult,
    Overdue,
    PolicyRecord,
    Requirement,
    Run,
    RunStatus,
    Step,
    Token,
    TokenResult,
    TokenStatus,
    Verdict,
)
from .tasks import TaskFn, task

__all__ = [
    "MAX_TAGS",
    "MAX_TAG_LENGTH",
    "AuditBreak",
    "AuditEntry",
    "AuditReport",
    "DecisionRefused",
    "Engine",
    "EngineError",
    "EngineNotStarted",
    "Event",
    "EventStream",
    "GroupResult",
    "InvalidDuration",
    "NotInRun",
    "NotJSON",
    "OutputRefused",
    "Overdue",
    "PayloadTooLarge",
    "PolicyRecord",
    "ReplayMismatch",
    "Requirement",
    "Run",
    "RunCanceled",
    "RunCompleted",
    "RunContext",
    "RunFailed",
    "RunNotFound",
    "RunPaused",
    "RunResumed",
    "RunStatus",
    "RunTriggered",
    "Step",
    "StepFailed",
    "StoreNotUsable",
    "TaskFn",
    "TaskNotFound",
    "Token",
    "TokenAlreadyFinished",
    "TokenCompleted",
    "TokenExpired",
    "TokenNotFound",
    "TokenResult",
    "TokenReviewed",
    "TokenStatus",
    "TokenTimedOut",
    "TokenTimeoutError",
    "Verdict",
    "migrate_store",
    "redact_url",
    "task",
    "wait",
]
