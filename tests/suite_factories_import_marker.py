"""A module that leaves a mark when imported, then fails: shows whether a suite imported it.

The mark is the file named by ``ODEBENCH_TEST_IMPORT_MARKER`` (nothing without it).
"""

import os
from pathlib import Path

if os.environ.get("ODEBENCH_TEST_IMPORT_MARKER"):
    Path(os.environ["ODEBENCH_TEST_IMPORT_MARKER"]).write_text("imported\n", encoding="utf-8")
raise RuntimeError("this module must not be imported")
