"""Common entry for the DVC stage scripts in ``stages/``: logging, params, and the exit codes
of :mod:`pipeline.exits` (an error is one line naming the stage)."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable

from .config import Params, load_params
from .exits import EXIT_ERROR, exit_code, one_line
from .kernels import pin_environment


def stage_main(name: str, body: Callable[[Params], int], argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"stages/{name}.py", description=f"DVC stage {name}")
    ap.add_argument("--params", default="params.yaml", help="parameter file (params.yaml)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    pin_environment()  # before anything runs torch: the same numbers on every CPU
    from . import progress

    progress.configure(enabled=not args.quiet)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return body(load_params(args.params))
    except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - one line, the documented code
        code = exit_code(e)
        if code == EXIT_ERROR:  # unexpected: the traceback goes to the stage's log
            traceback.print_exception(e)
        print(f"{name}: {one_line(e, code == EXIT_ERROR)}", file=sys.stderr)
        return code
