"""The test command of service.yaml: the unittest suite under coverage, when the image has
it (Debian's python3-coverage is in the runbook base image), writing Cobertura XML to
/tmp/coverage.xml for the pipeline's coverage gate.

Without coverage installed the tests still run and no report is written: the pipeline then
says "not measured", never a number it does not have.
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
APP_DIR = TESTS_DIR.parent
REPORT = "/tmp/coverage.xml"  # noqa: S108 - inside the throwaway test container


def main() -> int:
    try:
        import coverage
    except ImportError:
        print("coverage is not installed in this image: coverage not measured", file=sys.stderr)
        measured = None
    else:
        # data_file=None: nothing written into /app, which the service user cannot write.
        measured = coverage.Coverage(data_file=None, source=[str(APP_DIR)],
                                     omit=[str(TESTS_DIR / "*")])
        measured.start()
    suite = unittest.defaultTestLoader.discover(str(TESTS_DIR), top_level_dir=str(TESTS_DIR))
    result = unittest.TextTestRunner(verbosity=2).run(suite)
    if measured is not None:
        measured.stop()
        percent = measured.xml_report(outfile=REPORT)
        print(f"coverage {percent:.1f} % written to {REPORT}")
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
