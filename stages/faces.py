"""DVC stage `faces`: MTCNN face crops of every clip into sharded HDF5."""

import sys

from pipeline.stage import stage_main
from pipeline.workflow import run_feature

if __name__ == "__main__":
    sys.exit(stage_main("faces", lambda params: run_feature(params, "faces")))
