"""DVC stage `report`: the HTML QA page of the corpus (pipeline.qa.report)."""

import sys

from pipeline.qa.report import run_report
from pipeline.stage import stage_main

if __name__ == "__main__":
    sys.exit(stage_main("report", run_report))
