"""explorer: the Streamlit side of DMoE Explorer.

* :mod:`explorer.io`      CSV parsing and validation, model JSON (de)serialisation with a schema
* :mod:`explorer.figures` plain functions returning plotly figures (no Streamlit import)
* :mod:`explorer.state`   session state, URL settings and cached wrappers around :mod:`moecore`

``moecore`` knows nothing of Streamlit; pages are thin layers over these three modules.
"""
