"""`hitl`: read and complete runs and tokens in a store without the console.

    hitl runs [--status S] [--task T] [--limit N]
    hitl tokens [--status S] [--tag T]... [--run RUN_ID] [--limit N]
    hitl show RUN_ID
    hitl complete TOKEN_ID --data '{"decision": "approve", "reviewer": "ana"}'
    hitl demo-db PATH
    hitl profile add NAME --target URL [--proposer offline|openai] [--password-stdin] ...
    hitl profile list | remove NAME | password NAME
    hitl request "Refund $20 on invoice 1042" [--profile NAME]
    hitl approve TOKEN_ID [--comment C] [--edit JSON]
    hitl reject TOKEN_ID [--reason R]
    hitl migrate                   (once per store, as the store's owner)
    hitl worker                    (executes runs until SIGTERM or Ctrl-C)
    hitl worker --http HOST:PORT   (also serves signed links)
    hitl policy apply FILE | show | clear   (the approval policy: TOML [[rule]] tables)
    hitl audit verify | export --format csv|jsonl [--since DATE]
    hitl revert RUN_ID             (a db-change run that reverts an applied one, to review)
    hitl link TOKEN_ID --for NAME [--expires 1h]   (a signed URL to decide one review)

Every command takes `--store URL` (default: HITL_STORE, else runs.db in the per-user data
directory) and `--json` (one JSON document on stdout). `complete` only opens the store: the
run whose token it completes is left QUEUED for the console's engine, which picks it up at once
when it is running, or when it next starts. `request`, `approve` and `reject` work on the
built-in `db-change` task: `request` executes the run until it waits for review; `approve` and
`reject` decide it and then drive the run to its end themselves, unless another process (a
console) is executing runs on the store, which then does it while the CLI waits for the outcome.
A request names a target profile (`hitl profile`, or the console's settings): the database, the
model server and the allow and deny lists come from this machine's profile, never from a run.

Errors are one line on stderr starting with `hitl: error: `. Exit status:

    0  done (a db-change run: applied, or rejected)
    1  an error: unknown id, a token already decided, an unusable store or settings
    2  usage: bad arguments, bad JSON, a decision or request that is not well-formed
    3  conflict: the rows the proposal read or writes changed since; nothing was written
    4  invalid edit: the edits were refused (the run still waits) or no longer apply
    5  expired: the review's deadline passed; nothing was written
    6  failed: the run failed (its error is printed)
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from .command import Command
from .errors import (
    CONFLICT,
    EXPIRED,
    FAILURE,
    INVALID_EDIT,
    OUTCOME_CODES,
    RUN_FAILED,
    USAGE,
    CliError,
    Output,
)
from .inputs import check_unicode
from .parser import build_parser
from .render import to_json

__all__ = [
    "CONFLICT",
    "EXPIRED",
    "FAILURE",
    "INVALID_EDIT",
    "OUTCOME_CODES",
    "RUN_FAILED",
    "USAGE",
    "CliError",
    "Output",
    "main",
]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `hitl` command line; returns the exit status."""
    try:
        args = build_parser().parse_args(argv)
        check_unicode(vars(args))
        command: Command[Any] = args.command_type.prepare(args)
        result = command.execute()
    except CliError as exc:
        message = " ".join(str(exc).split())  # one line, whatever the message holds
        print(f"hitl: error: {message}", file=sys.stderr)
        return exc.code
    except SystemExit as exc:  # --help and --version print and exit through argparse
        return exc.code if isinstance(exc.code, int) else 0
    except KeyboardInterrupt:
        print("hitl: error: interrupted", file=sys.stderr)
        return 130
    out = command.render(result)
    if not out.doc and not out.text:  # it printed as it went (hitl worker)
        return out.code
    text = to_json(out.doc) if args.json else out.text
    try:
        print(text, flush=True)
    except BrokenPipeError:
        # The reader went away (`hitl runs | head`): stop quietly, and keep Python's exit-time
        # flush of stdout from raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return FAILURE
    return out.code
