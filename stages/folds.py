"""DVC stage `folds`: see pipeline.workflow.run_folds."""

import sys

from pipeline.stage import stage_main
from pipeline.workflow import run_folds

if __name__ == "__main__":
    sys.exit(stage_main("folds", run_folds))
