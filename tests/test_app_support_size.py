"""The support size is one app setting: None means the paper's floor(n / (4 M)), a number is S.

Links and session files written when it was two settings (a flag ``support_auto`` and a size
``support``) open with the same support size.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # explorer/ is not installed

from app_helpers import new_session

import explorer.io
import explorer.settings
from explorer.data import Dataset

# A small fit: n = 4000 over M = 4 machines, the paper's S = floor(4000 / 16) = 250.
SMALL = {"n": "4000", "M": "4", "backend": "sequential", "jobs": "1"}


@pytest.mark.parametrize("query, expect", [
    ({}, {}),                                                           # the paper's rule: the default
    ({"S": "300"}, {"support_size": 300}),
    ({"S": "auto"}, {"support_size": None}),
    ({"Sauto": "false", "S": "300"}, {"support_size": 300}),            # old link, own size
    ({"Sauto": "false"}, {"support_size": 1000}),                       # old link, the old size's default
    ({"Sauto": "true", "S": "300"}, {"support_size": None}),            # old link: S counted only with the flag off
    ({"xSa": "false", "xS": "150"}, {"exp_support_size": 150}),
    ({"xSa": "false"}, {"exp_support_size": 625}),
    ({"xSa": "true", "xS": "150"}, {"exp_support_size": None}),
])
def test_old_and_new_links_give_one_support_setting(query, expect):
    values, ignored = explorer.settings.parse_query(query)
    assert values == expect and ignored == []


def test_a_bad_old_flag_is_ignored_with_why():
    values, ignored = explorer.settings.parse_query({"Sauto": "maybe", "S": "300"})
    assert values == {"support_size": 300}
    assert len(ignored) == 1 and ignored[0].startswith("Sauto='maybe'")


def test_one_support_setting_and_no_flag_in_the_declarations():
    names = set(explorer.settings.SETTINGS)
    assert {"support_size", "exp_support_size"} <= names
    assert not names & {"support", "support_auto", "exp_support", "exp_support_auto"}


def test_an_old_link_fits_with_the_support_size_it_meant():
    at = new_session(query=dict(SMALL, Sauto="false", S="300"))
    fit = at.session_state["fit"]
    assert len(fit.dm.support_indices_) == 300
    assert at.session_state["_cfg"]["support_size"] == 300
    # Its share link is written the new way: the size alone.
    code = " ".join(c.value for c in at.get("code"))
    assert "S=300" in code and "Sauto" not in code


def test_an_old_link_with_the_flag_on_fits_with_the_papers_size():
    at = new_session(query=dict(SMALL, Sauto="true", S="300"))
    assert len(at.session_state["fit"].dm.support_indices_) == 4000 // (4 * 4)
    assert "S=" not in " ".join(c.value for c in at.get("code"))


def test_an_old_session_file_loads_with_the_support_size_it_meant():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (400, 1))
    y = X[:, 0] + 0.1 * rng.standard_normal(400)
    raw = explorer.io.session_to_json(Dataset(X, y, "old", ["x"], "y"),
                                      {"K": 2, "M": 2, "support_auto": False, "support": 120,
                                       "exp_support_auto": True, "exp_support": 625})
    assert json.loads(raw)["settings"]["support"] == 120
    at = new_session("pages/data.py")
    at.file_uploader(key="session_upload").upload("old.json", raw, "application/json").run()
    at.button(key="btn_load_session").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "Ignored" not in " ".join(s.value for s in at.success)
    cfg = at.session_state["_cfg"]
    assert cfg["support_size"] == 120 and cfg["exp_support_size"] is None
    at.switch_page("pages/fit.py").run()
    assert at.checkbox(key="cfg_support_size_rule").value is False
    assert at.number_input(key="cfg_support_size").value == 120


def test_the_checkbox_and_the_box_show_and_set_the_one_setting():
    at = new_session("pages/fit.py", query=SMALL)
    rule, box = at.checkbox(key="cfg_support_size_rule"), at.number_input(key="cfg_support_size")
    assert rule.value and box.disabled and box.value == 250  # greyed out, the size the rule gives
    rule.uncheck().run()
    box = at.number_input(key="cfg_support_size")
    assert not box.disabled and box.value == 250 and at.session_state["_cfg"]["support_size"] == 250
    box.set_value(300).run()
    assert at.session_state["_cfg"]["support_size"] == 300
    at.button(key="btn_fit").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert len(at.session_state["fit"].dm.support_indices_) == 300
    at.checkbox(key="cfg_support_size_rule").check().run()
    assert at.session_state["_cfg"]["support_size"] is None
    assert at.number_input(key="cfg_support_size").value == 250


def test_a_typed_size_out_of_range_keeps_the_last_one_with_the_librarys_message():
    at = new_session("pages/fit.py", query=dict(SMALL, S="300"))
    at.number_input(key="cfg_support_size").set_value(2_000_000).run()
    text = " ".join(e.value for e in at.error)
    assert "support_size must be in [1, 1000000]" in text and "Still using 300" in text
    assert at.session_state["_cfg"]["support_size"] == 300
    assert at.number_input(key="cfg_support_size").value == 300


def test_the_pages_size_messages_use_the_widgets_names_and_the_library_keeps_its_own():
    # The page's message was the library's, rewritten by string replacement: a reworded library
    # message would have come through with n_machines= in the page's words.
    from explorer.runs import settings_error
    from moecore.params import check_distributed_sizes

    too_many = settings_error(2000, 2, 3, 500, None)
    assert too_many.startswith("M = 500 is too large for n=2000 samples with K = 3:")
    assert "n_machines" not in too_many and "n_experts" not in too_many
    assert settings_error(2000, 2, 3, 4, 2) == (
        "the supporting sample S must be in [3, 2000], got 2: it needs a point per reduced expert, so it cannot be "
        "smaller than K = 3.")
    assert settings_error(2000, 2, 3, 4, 300) == ""
    with pytest.raises(ValueError, match=r"^support_size must be in \[3, 2000\], got 2"):
        check_distributed_sizes(3, 4, 2, 2000, 2, 10)
    with pytest.raises(ValueError, match=r"^n_machines=500 is too large for n=2000 samples with n_experts=3:"):
        check_distributed_sizes(3, 500, None, 2000, 2, 10)


def test_on_one_machine_the_message_blames_the_experts_not_the_machines():
    # "M = 1 is too large for n=5 samples": no machine count helps there (the audit of 2026-12-06).
    from explorer.runs import settings_error

    line = settings_error(5, 1, 3, 1, None)
    assert line.startswith("K = 3 is too many for the n = 5 samples, even on one machine: a fit of 3 experts needs "
                           "at least K * (d + 1) + 1 = 7 samples. To fix: at most 2 expert(s)"), line
