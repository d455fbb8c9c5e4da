"""A real data set end to end in a real browser: pick the flights on the Data page, fit them over 64
machines, the K view, the predictions download, a saved model applied back, a sweep over M of the
flights themselves (Debian chromium)."""

import json

import pandas as pd
import pytest
from test_browser import fresh_server_and_browser, no_errors, plots_rendered, set_number, settle, shoot

pytestmark = pytest.mark.browser


def test_flights_end_to_end(tmp_path):
    with fresh_server_and_browser("streamlit_real_data.log") as (url, browser):
        page = browser.new_context(viewport={"width": 1500, "height": 1000}).new_page()
        page.goto(url + "/data")
        settle(page)
        page.get_by_text("real data set", exact=True).click()
        page.get_by_role("button", name="Load this data set").click()
        page.wait_for_selector("text=Loaded flights", timeout=120_000)
        settle(page)
        no_errors(page)
        assert page.get_by_role("heading", name="Current data: flights").count() == 1
        shoot(page, "real-flights-data")

        page.get_by_role("link", name="Distributed fit", exact=True).first.click()
        page.wait_for_selector("h1:has-text('Distributed fit')", timeout=60_000)
        settle(page)
        set_number(page, "Machines M", 64)
        page.wait_for_selector("text=5,114 rows per machine for 23 parameters", timeout=60_000)
        page.get_by_role("button", name="Run distributed fit").click()
        page.wait_for_function("() => [...document.querySelectorAll('[data-testid=\"stMetricValue\"]')]"
                               ".some(e => e.innerText.trim() === '64 / 3')", timeout=300_000)
        settle(page, timeout=300_000)
        no_errors(page)
        plots_rendered(page, 6)
        shoot(page, "real-flights-fit")

        with page.expect_download(timeout=120_000) as dl:
            page.get_by_role("button", name="Download predictions on the data (CSV)").click()
        assert dl.value.suggested_filename == "predictions_flights.csv"
        pred = pd.read_csv(dl.value.path())
        assert len(pred) == 327_346 and {"prediction", "gate_1", "gate_3", "most_likely_expert"} <= set(pred.columns)
        with page.expect_download(timeout=60_000) as dl:
            page.get_by_role("button", name="Download the reduced model (JSON)").click()
        assert dl.value.suggested_filename == "reduced_model_flights.json"  # named after the data, as predictions
        model_path = tmp_path / "reduced_model.json"
        dl.value.save_as(model_path)
        meta = json.loads(model_path.read_text())["meta"]
        assert meta["y_name"] == "arr_delay" and meta["x_names"] == ["dep_delay", "distance", "hour"]
        page.get_by_text("Apply a saved model to the current data").click()
        page.locator('.st-key-apply_model_upload [data-testid="stFileUploaderDropzoneInput"]').set_input_files(
            str(model_path))
        page.get_by_role("button", name="Download its predictions (CSV)").wait_for(timeout=120_000)
        settle(page)
        no_errors(page)

        page.get_by_role("link", name="Experiments", exact=True).first.click()
        page.wait_for_selector("h1:has-text('Experiments')", timeout=60_000)
        settle(page)
        page.get_by_text("Choose K on the current data").click()
        box = page.get_by_label("Numbers of experts to try")
        box.fill("1, 2")
        box.press("Enter")
        page.get_by_role("button", name="Compute").click()
        page.wait_for_selector("text=for the global EM and", timeout=300_000)
        settle(page, timeout=300_000)
        no_errors(page)
        shoot(page, "real-flights-kview")

        # A sweep of the current data: the flights' own rows, 20 % held out, the flights' K.
        page.get_by_text("the current data", exact=True).click()
        page.wait_for_selector("text=261,876 training rows", timeout=60_000)
        settle(page)
        box = page.get_by_label("Values (comma-separated)", exact=True)
        box.fill("4, 8")
        box.press("Enter")
        set_number(page, "Repeats", 1)
        page.get_by_role("button", name="Run the sweep").click()
        page.wait_for_selector("text=Finished: 4 fits.", timeout=300_000)  # 2 reductions, the global EM twice
        settle(page, timeout=300_000)
        no_errors(page)
        text = page.locator('[data-testid="stMain"]').inner_text()
        assert "Settings of these runs: data flights" in text and "n = 261,876 training rows" in text
        assert "K = 3" in text
        plots_rendered(page, 3)
        shoot(page, "real-flights-sweep")
