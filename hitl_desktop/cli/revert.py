"""`hitl revert RUN_ID`: request the revert of an applied db-change run, and run it until it
waits for review (or ends at once, when a row it would restore changed since)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any, ClassVar

from ..agent import (
    Outcome,
    RequestInvalid,
    RevertRefused,
    Review,
    Targets,
    revert,
    review_from_steps,
)
from ..engine import Engine, Run, RunStatus
from .command import StoreCommand
from .errors import OUTCOME_CODES, RUN_FAILED, USAGE, CliError, Output
from .inputs import store_url
from .render import diff_line, record


@dataclass(frozen=True)
class Revert(StoreCommand[tuple[Run, Review | None]]):
    """`hitl revert`: start the revert run of an applied run."""

    store: str
    run_id: str
    timeout: str | None
    wait: int

    executes_runs: ClassVar[bool] = True

    @classmethod
    def prepare(cls, args: argparse.Namespace) -> Revert:
        return cls(store_url(args.store), args.run_id, args.timeout, args.wait)

    async def fetch(self, engine: Engine, targets: Targets) -> tuple[Run, Review | None]:
        await engine.start()
        try:
            run_id = await revert(engine, self.run_id, targets=targets, timeout=self.timeout)
        except RevertRefused as exc:
            raise CliError(f"{exc}; nothing was started") from None
        except RequestInvalid as exc:
            raise CliError(f"{exc}; nothing was started", USAGE) from None
        try:
            run = await engine.wait_for(run_id, timeout=self.wait)
        except TimeoutError:
            raise CliError(
                f"revert run {run_id} was not ready for review within {self.wait} s; "
                "the console's engine carries on with it"
            ) from None
        if run.status == RunStatus.FAILED:
            raise CliError(f"revert run {run.id} failed: {run.error}", RUN_FAILED)
        return run, review_from_steps(await engine.get_steps(run.id))

    def render(self, result: tuple[Run, Review | None]) -> Output:
        run, review = result
        doc: dict[str, Any] = {
            "run_id": run.id,
            "reverts": self.run_id,
            "run": record(run),
            "token_id": run.waiting_token_id,
            "review": None if review is None else review.to_json(),
        }
        lines = [run.id, f"revert run {run.id} of run {self.run_id} is {run.status}"]
        if run.status == RunStatus.COMPLETED:  # ended before review: a row changed since
            outcome = Outcome.from_json(run.output)
            doc["outcome"] = outcome.to_json()
            lines.append(f"{outcome.outcome}: {outcome.message}")
            return Output(doc, "\n".join(lines), OUTCOME_CODES[outcome.outcome])
        token = run.waiting_token_id
        if review is not None:
            lines += [f"token {token}", f"summary: {review.summary}"]
            lines += [diff_line(diff) for diff in review.diffs]
            lines.append(f"approve: hitl approve {token}    reject: hitl reject {token}")
        return Output(doc, "\n".join(lines))


def add_revert_command(sub: Any, common: argparse.ArgumentParser) -> None:
    command = sub.add_parser(
        "revert",
        parents=[common],
        help="undo an applied db-change run: start a run of its inverse, for review",
        description="Start a db-change run whose proposal undoes what RUN_ID wrote (from the "
        "rows its apply recorded), and run it until it waits for review. It is approved and "
        "applied like any change; a row changed since RUN_ID's apply is a conflict, and "
        "nothing is written. Prints the new run's id first.",
    )
    command.add_argument("run_id", metavar="RUN_ID", help="the applied db-change run")
    command.add_argument(
        "--timeout", metavar="DURATION", help="how long the review may wait (default: the run's)"
    )
    command.add_argument(
        "--wait", type=int, default=300, metavar="S", help="give up after S seconds (300)"
    )
    command.set_defaults(command_type=Revert)
