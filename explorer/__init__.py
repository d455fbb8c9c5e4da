"""explorer: the Streamlit side of DMoE Explorer, one job per module.

* :mod:`explorer.settings` every app setting declared once (over :mod:`moecore.params`): widgets,
  defaults, URL keys and share links
* :mod:`explorer.data`     the session's data: simulated (cached) or uploaded
* :mod:`explorer.runs`     fits, comparisons and worked examples for the pages, cached, and the one
  place that turns a failure into an ``st.error``
* :mod:`explorer.chrome`   what every page shares: session set-up, sidebar, share box
* :mod:`explorer.lessons`  one-click demonstrations for a class
* :mod:`explorer.figures`  plain functions returning plotly figures (no Streamlit import), one
  module per page over :mod:`explorer.figures.common`
* :mod:`explorer.teaching` the Learn page's worked examples (MM one iterate at a time, rounds)
* :mod:`explorer.walk`     the Learn page's live example stepped through (cached, a fragment)
* :mod:`explorer.explain`  what the pages say about a result: round-off, long warnings, speed-up
  and wall clock, the paper (plain functions)
* :mod:`explorer.evidence` each lesson's live sentence and the cells and boxes it highlights
* :mod:`explorer.tables`   plain functions returning pandas tables
* :mod:`explorer.io`       CSV parsing and validation, model JSON and session files

``moecore`` knows nothing of Streamlit; pages only lay out widgets, figures and tables.
"""
