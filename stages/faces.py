"""DVC stage `faces`: MTCNN face crops of every clip into sharded HDF5."""

import sys

from pipeline.config import Params
from pipeline.stage import stage_main
from pipeline.vision.syncnet import SyncNetModelError
from pipeline.workflow import run_feature


def main(params: Params) -> int:
    try:
        return run_feature(params, "faces")
    except SyncNetModelError as e:  # select: speaker with backend syncnet: weights missing
        print(f"faces: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(stage_main("faces", main))
