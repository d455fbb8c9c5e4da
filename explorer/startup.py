"""What a session's first run needs before anything heavy is imported (so: nothing heavy here).

Several sessions of a fresh server run their first script at once, each in its own thread. When
one thread imports numpy through plotly (the first contact's chart, app.py) while another imports
it through the compute core, Python's import machinery breaks the would-be deadlock between the
two orders by handing one thread a partially initialised module ("partially initialized module
'numpy' has no attribute 'ndarray'", seen with six sessions opening a fresh server at once).
The first contact's imports therefore run under one lock: the first session imports, the others
wait for it and then find the modules ready.
"""

import threading

IMPORT_LOCK = threading.Lock()
