"""DVC stage `landmarks`: 68-point landmarks in the faces stage's boxes, into sharded HDF5."""

import sys

from pipeline.config import Params
from pipeline.features.landmarks import with_faces_dir
from pipeline.stage import stage_main
from pipeline.vision.landmarkers import LandmarkModelError
from pipeline.workflow import run_feature


def main(params: Params) -> int:
    try:
        return run_feature(with_faces_dir(params), "landmarks")
    except LandmarkModelError as e:
        print(f"landmarks: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(stage_main("landmarks", main))
