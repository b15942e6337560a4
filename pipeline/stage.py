"""Common entry for the DVC stage scripts in ``stages/``: logging, params, exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from .config import ConfigError, Params, load_params
from .kernels import pin_environment


def stage_main(name: str, body: Callable[[Params], int], argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog=f"stages/{name}.py", description=f"DVC stage {name}")
    ap.add_argument("--params", default="params.yaml", help="parameter file (params.yaml)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)
    pin_environment()  # before anything runs torch: the same numbers on every CPU
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        params = load_params(args.params)
    except ConfigError as e:
        print(f"{name}: bad parameters: {e}", file=sys.stderr)
        return 2
    return body(params)
