"""DVC stage `evaluate`: the evaluation methods over the folds; metrics, plots, report.

Multi-GPU / multi-node: torchrun --nproc_per_node=N stages/evaluate.py
"""

import sys

from pipeline.stage import stage_main
from pipeline.training.workflow import run_evaluate

if __name__ == "__main__":
    sys.exit(stage_main("evaluate", run_evaluate))
