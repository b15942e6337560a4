"""DVC stage `pretrain`: MPUC contrastive pretraining, one encoder per fold.

Multi-GPU / multi-node: torchrun --nproc_per_node=N stages/pretrain.py
"""

import sys

from pipeline.stage import stage_main
from pipeline.training.workflow import run_pretrain

if __name__ == "__main__":
    sys.exit(stage_main("pretrain", run_pretrain))
