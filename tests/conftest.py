"""The suite's process-wide set-up.

Under pytest-xdist the controlling process imports the module of every warning a worker reports
(``xdist.workermanage.unserialize_warning_message``), from one thread per worker. moecore's warnings
live in moecore, so its first import in the controller could run in two threads at once, and one of them
then met the package half-initialised: "ImportError: cannot import name 'DegenerateFitWarning' from
partially initialized module 'moecore.em'", an INTERNALERROR that ends the run (2 of about 20 runs of
test_portfolio, test_structure and test_degenerate on 2 workers, 2026-12-07). Imported here, once,
before any worker starts.
"""

import moecore  # noqa: F401
