"""Data: simulate from a named design or custom parameters, or upload a CSV; look at it."""

import streamlit as st

from explorer import chrome, explain, figures, runs, settings, tables
from explorer.data import (
    Dataset,
    custom_params,
    dataset_from_settings,
    dataset_from_upload,
    outlying_rows,
    repeated_rows,
    tied_inputs,
    without_rows,
)
from explorer.io import (
    COMMENT_LINES_ATTR,
    CONSTANT,
    DECIMAL_COMMA_ATTR,
    MAX_COLUMNS,
    MAX_MODEL_MB,
    MAX_ROWS,
    MAX_SESSION_MB,
    MAX_UPLOAD_MB,
    data_to_csv,
    left_out_inputs,
    markdown_escape,
    model_from_json,
    numeric_inputs,
    other_text_columns,
    params_from_text,
    params_to_text,
    parse_csv,
    session_from_json,
    stem,
    text_cell_advice,
    text_number_columns,
)
from moecore.datasets import DATASETS
from moecore.outliers import FAR_FROM_BULK, ISOLATION
from moecore.simulation import DESIGNS


def _column_defaults(df):
    """The column pickers set to a file's defaults: the response y (else the last column), every other
    numeric column as an input."""
    columns = list(df.columns)
    st.session_state["csv_y"] = "y" if "y" in columns else columns[-1]
    st.session_state["csv_x"] = numeric_inputs(df, st.session_state["csv_y"])


data = chrome.page("Data")
st.caption("Simulate a mixture of experts, or bring your own CSV. The data stays with you across pages.")

sim_tab, csv_tab, session_tab = st.tabs(["Simulate or real data", "Upload a CSV", "Load a session file"])

with sim_tab:
    typed_ok = True  # False: the custom parameters' box is ticked and its text cannot be read
    settings.widget("source")
    c1, c2, c3 = st.columns(3)
    if settings.settings()["source"] == "real":
        name = settings.widget("real_set", where=c1)
        info = DATASETS[name]
        c2.markdown(f"**{name}**: {info.description}")
        c3.markdown(f"K = {info.suggested_experts} by default (the K view on the Experiments page compares others). "
                    f"Source: {info.source}. Licence: {info.licence}. See docs/data.md.")
        if st.button("Load this data set", type="primary", key="btn_real"):
            new = runs.attempt("Loading", dataset_from_settings, after="")
            if new is not None:
                st.session_state["data"] = new
                st.session_state.pop("compare", None)
                settings.set_setting("K", info.suggested_experts)
                st.success(f"Loaded {new.name}: n = {new.n:,}, K set to {info.suggested_experts}. Fit it on the "
                           "Distributed fit page.")
    elif settings.settings()["source"] == "design":
        name = settings.widget("design", where=c1)
        design = DESIGNS[name]
        c2.markdown(f"**{design.name}**: {design.description}")
        c3.markdown(f"x ~ {design.x_dist}, location {design.x_loc}, scale {design.x_scale}")
    else:
        for name, where in [("custom_K", c1), ("custom_d", c1), ("custom_sep", c2), ("custom_gate", c2),
                            ("custom_var", c2), ("x_dist", c3), ("x_scale", c3)]:
            settings.widget(name, where=where)
        s = settings.settings()
        knobs = custom_params(s["custom_K"], s["custom_d"], s["custom_sep"], s["custom_gate"],
                                    s["custom_var"], s["seed"])
        truth = None
        with st.expander("Edit the gates, experts and variances exactly"):
            st.caption("JSON arrays: rows are the intercept then one row per input, columns are the experts; "
                       "gates are relative to the last expert (its column is set to 0). Prefilled from the knobs.")
            # Set by a link's typed parameters (explorer.chrome) before the box is first drawn: no value= then,
            # which Streamlit would warn about beside the one in the session state.
            prefill = None if "custom_params_text" in st.session_state else params_to_text(knobs)
            text = st.text_area("Parameters", value=prefill, height=130, key="custom_params_text")
            if st.checkbox("Use these parameters instead of the knobs", key="use_custom_text"):
                truth = runs.attempt("Reading the parameters", params_from_text, text,
                                     after="Fix the text, or untick the box to use the knobs.")
                typed_ok = truth is not None
        mj = st.file_uploader("Or upload them: a model JSON (as downloaded on the Distributed fit page, "
                              f"at most {MAX_MODEL_MB} MB)", key="model_upload", max_upload_size=MAX_MODEL_MB)
        if mj is not None:
            loaded = runs.attempt("Reading the model file", model_from_json, mj.getvalue(), mj.name,
                                  after="The knobs above are used.")
            truth = loaded[0] if loaded is not None else None
            if truth is not None:
                st.caption(f"Using {markdown_escape(mj.name)}: K = {truth.n_experts}, d = {truth.n_features} "
                           "(replaces the knobs above).")
        if truth is not None:
            st.session_state["custom_truth"] = truth
        else:
            st.session_state.pop("custom_truth", None)
    c1, c2, c3 = st.columns([1, 1, 2])
    if settings.settings()["source"] != "real":
        settings.widget("n", where=c1)
        settings.widget("seed", where=c2)
        c3.write("")
    if settings.settings()["source"] != "real" and c3.button("Generate data", type="primary", key="btn_generate"):
        # Ticked but unreadable, the typed parameters would silently give way to the knobs.
        new = runs.attempt("Simulating", dataset_from_settings, after="") if typed_ok else None
        if not typed_ok:
            st.error("Nothing generated: the box asks for the typed parameters, and they cannot be read (the "
                     "message above). Fix the text, or untick the box to use the knobs. Your current data is "
                     "unchanged.")
        if new is not None:
            st.session_state["data"] = new
            st.session_state.pop("compare", None)
            st.success(f"New data generated: n = {new.n:,}. Refit it on the Distributed fit page.")

with csv_tab:
    st.markdown(
        f"CSV with a header row, comma/semicolon/tab separated, UTF-8. Limits: **{MAX_UPLOAD_MB} MB**, "
        f"**{MAX_ROWS:,} rows**, {MAX_COLUMNS} columns. The file is parsed as data only; nothing in it "
        "is executed."
    )
    up = st.file_uploader(f"CSV file (at most {MAX_UPLOAD_MB} MB)", key="csv_upload",
                          max_upload_size=MAX_UPLOAD_MB)
    if up is not None:
        sig = (up.name, up.size, getattr(up, "file_id", None))
        if st.session_state.get("upload_sig") != sig:
            st.session_state["upload_sig"] = sig
            st.session_state["upload_name"] = up.name
            st.session_state["upload_df"] = runs.attempt("Reading the CSV", parse_csv, up.getvalue(), up.name,
                                                         after="Your current data is unchanged.",
                                                         remember="upload_error")
            if st.session_state["upload_df"] is not None:
                # The column pickers are set to the new file's defaults through their state, which the
                # browser then shows: a default= alone left a second file's input box holding the first
                # file's picks (empty, or a column the new file does not have).
                _column_defaults(st.session_state["upload_df"])
        elif st.session_state.get("upload_error"):
            st.error(st.session_state["upload_error"])  # the same file: its message, without parsing it again
    df = st.session_state.get("upload_df")
    if df is not None and "csv_y" not in st.session_state:  # back from another page: its pickers' state is gone
        _column_defaults(df)
    if df is not None:
        # Kept in the session: Streamlit empties the uploader when the user visits another page, and
        # choosing other columns of the same file should not mean uploading it again.
        n_rows, n_cols = df.shape
        st.caption(f"{markdown_escape(st.session_state['upload_name'])}: {n_rows:,} row{'s' * (n_rows != 1)}, "
                   f"{n_cols} column{'s' * (n_cols != 1)}" + ("" if up is not None else " (the last file uploaded)"))
        st.dataframe(df.head(8), width="stretch")
        if df.attrs.get(DECIMAL_COMMA_ATTR):
            st.info("Read with decimal commas (5,88 as 5.88): "
                    + ", ".join(markdown_escape(c) for c in df.attrs[DECIMAL_COMMA_ATTR]) + ".")
        if df.attrs.get(COMMENT_LINES_ATTR):
            k = df.attrs[COMMENT_LINES_ATTR]
            st.info(f"Skipped {k:,} comment line{'s' * (k != 1)} (starting with #).")
        cols = list(df.columns)

        def response_changed():  # the new response leaves the inputs (it is no longer offered there)
            st.session_state["csv_x"] = [c for c in st.session_state.get("csv_x", []) if c != st.session_state["csv_y"]]

        y_col = st.selectbox("Response column (y)", cols, key="csv_y", on_change=response_changed)
        separated = text_number_columns(df, y_col)
        if separated:
            named = ", ".join(f"{markdown_escape(c)} (e.g. {markdown_escape(v)})" for c, v in separated[:5])
            st.warning(f"Read as text, so not among the inputs: {named}. Numbers written with thousands separators "
                       "(1,234.5) or a decimal comma (1,5) read as text: save the file with decimal points and no "
                       "separators, then upload it again.")
        elif not numeric_inputs(df, y_col) and len(cols) > 1 and text_cell_advice(df, y_col):
            st.warning(text_cell_advice(df, y_col))  # its cells quoted for Markdown already
        texts = other_text_columns(df, y_col) if numeric_inputs(df, y_col) else []
        if texts:
            named = ", ".join(f"{markdown_escape(c)} (e.g. {markdown_escape(v)})" for c, v in texts[:5])
            st.info(f"Text, so not among the inputs: {named}{' ...' if len(texts) > 5 else ''}. A number written "
                    "with its unit (52.1 kg) or a date reads as text: to use one as an input, save the numbers "
                    "alone (52.1, or a date as days since a start).")
        left = left_out_inputs(df, y_col)
        if left:
            addable = any(not why.startswith(CONSTANT) for _, why in left)
            st.info("Not picked as inputs by default: " + ", ".join(f"{markdown_escape(c)} ({why})" for c, why in left)
                    + (". Add them below if they are data." if addable else "."))
        x_cols = st.multiselect("Input columns (x)", [c for c in cols if c != y_col], key="csv_x")
        if st.button("Use these columns", type="primary", key="btn_use_csv"):
            new = runs.attempt("Using these columns", dataset_from_upload, df, y_col, x_cols,
                               st.session_state["upload_name"], after="Your current data is unchanged.")
            if new is not None:
                st.session_state["data"] = new
                st.session_state.pop("compare", None)
                st.success(f"Loaded {new.n:,} rows with {len(x_cols)} input(s). Fit them on the Distributed fit page.")

with session_tab:
    st.markdown("A session file (downloaded from the sidebar's Share box) holds data and settings: it reopens "
                "uploaded data, which cannot travel in a link.")
    sf = st.file_uploader("Session file (.json)", key="session_upload", max_upload_size=MAX_SESSION_MB)
    if sf is not None and st.button("Load this session", type="primary", key="btn_load_session"):
        loaded = runs.attempt("Loading the session", session_from_json, sf.getvalue(), sf.name,
                              after="Your current data is unchanged.")
        if loaded is not None:
            X, y, labels, x_names, y_name, name, values = loaded
            refused = settings.update_settings_from(values)
            st.session_state["data"] = Dataset(X, y, name, x_names, y_name, labels=labels, source="csv")
            st.session_state.pop("compare", None)
            st.success(f"Loaded {len(y):,} rows and the settings of {markdown_escape(sf.name)}. Fit them on "
                       "the Distributed fit page."
                       + (f" Ignored: {'; '.join(refused)}." if refused else ""))

data = st.session_state["data"]
st.divider()
st.subheader(f"Current data: {markdown_escape(data.name)}")
m1, m2, m3, m4 = chrome.cards(4, "data_cards")
m1.metric("samples n", f"{data.n:,}")
m2.metric("inputs d", data.d)
m3.metric("true experts K", data.truth.n_experts if data.truth is not None else "unknown")
m4.metric("source", {"design": "named design", "custom": "custom", "csv": "uploaded CSV",
                     "real": "real data set"}.get(data.source, data.source))

outliers = outlying_rows(data)
line, details = explain.outliers_warning(outliers)
if line:
    st.warning(line)
    with st.expander(f"Which rows (numbered from 0, as in the tables), and how far: {FAR_FROM_BULK:g} robust "
                     f"standard deviations from the median and {ISOLATION:g}x as far as the next row make an outlier"):
        st.markdown("\n".join(f"- {markdown_escape(d)}" for d in details))
    n_out = len(outliers.rows)
    if st.button(f"Leave out the {n_out} outlying row{'s' if n_out > 1 else ''}", key="btn_drop_outliers"):
        st.session_state["data"] = without_rows(data, outliers.rows)
        st.session_state.pop("compare", None)
        st.rerun()

line = explain.tied_inputs_warning(tied_inputs(data), data.x_names)
if line:
    st.warning(line)
repeats = repeated_rows(data)
if repeats.size:
    # Copies made by an export or a join fall on both sides of a held-out split, where scores then reward
    # memorising rows (every row 5 times: the held-out log-likelihood chose K = 10 over the truth's 3, the
    # audit of 2026-12-06); rounded measurements repeat too, and are data.
    st.info(f"{repeats.size:,} of the {data.n:,} rows repeat an earlier row exactly (every input and the response). "
            "Rounded measurements repeat and are data; copies made by an export or a join are not, and a held-out "
            "split (Compare, Experiments) would then hold out rows that are also training rows, which favours "
            "larger K.")
    if st.button(f"Keep one copy of each row (leave out {repeats.size:,})", key="btn_drop_copies"):
        st.session_state["data"] = without_rows(data, repeats, "repeated row")
        st.session_state.pop("compare", None)
        st.rerun()

if data.d == 1:
    view, feature = "one input", 0
else:
    c1, c2 = st.columns(2)
    view = c1.radio("View", ["one input", "2-D projection"], horizontal=True, key="data_view")
    feature = c2.selectbox("Input", range(data.d), format_func=lambda j: data.x_names[j], key="data_feature")
left, right = chrome.pair("data_plots", (3, 2))
with left:
    if view == "one input":
        fig = figures.data_figure(data.X, data.y, data.labels, data.truth, feature=feature,
                             x_names=data.x_names, y_name=data.y_name)
    else:
        fig = figures.projection_figure(data.X, data.labels, data.y)
    chrome.chart(fig, "data_plot")
with right:
    if data.truth is not None:
        chrome.chart(figures.gates_figure({"truth": data.truth}, data.X, feature=feature, x_names=data.x_names),
                     "data_gates")
        st.caption("True parameters (gates relative to the last expert)")
        st.dataframe(tables.params_table(data.truth, data.x_names).round(3), width="stretch")
    else:
        st.info(("Uploaded data" if data.source == "csv" else "Real data") + " have no known true model: fit one on "
                "the Distributed fit page.")
chrome.download("Download the data as CSV",  # written on the click: 0.08 s per rerun at n = 20 000
                lambda: data_to_csv(data.X, data.y, data.labels, data.x_names, data.y_name),
                file_name=f"{stem(data.name)}.csv", mime="text/csv", key="dl_data")

chrome.done()
