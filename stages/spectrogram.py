"""DVC stage `spectrogram`: extract the spectrogram feature of every clip into sharded HDF5."""

import sys

from pipeline.stage import stage_main
from pipeline.workflow import run_feature

if __name__ == "__main__":
    sys.exit(stage_main("spectrogram", lambda params: run_feature(params, "spectrogram")))
