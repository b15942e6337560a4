"""DVC stage `words`: embed every clip's transcript into sharded HDF5 (OOV rate in metrics)."""

import sys

from pipeline.stage import stage_main
from pipeline.workflow import run_feature

if __name__ == "__main__":
    sys.exit(stage_main("words", lambda params: run_feature(params, "words")))
