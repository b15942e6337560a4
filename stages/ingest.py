"""DVC stage `ingest`: see pipeline.workflow.run_ingest."""

import sys

from pipeline.stage import stage_main
from pipeline.workflow import run_ingest

if __name__ == "__main__":
    sys.exit(stage_main("ingest", run_ingest))
