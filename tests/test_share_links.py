"""A share link carries the settings as applied: a value typed on the Data page but not generated
does not travel, so the receiver of the link sees the sender's numbers (AppTest sessions)."""

from urllib.parse import parse_qsl, urlsplit

from app_helpers import new_session as session


def shared_query(at):
    """The query of the share box's link (the sidebar's st.code)."""
    links = [c.value for c in at.get("code") if c.value.startswith("http")]
    assert links, "no share link on the page"
    return dict(parse_qsl(urlsplit(links[-1]).query))


def test_receiver_sees_the_senders_data_after_an_unapplied_edit():
    sender = session("pages/data.py", {"n": "6000", "seed": "3"})
    assert sender.session_state["data"].n == 6000
    sender.number_input(key="cfg_n").set_value(50_000).run()  # typed, "Generate data" not pressed
    sender.number_input(key="cfg_seed").set_value(9).run()
    assert sender.session_state["data"].n == 6000
    query = shared_query(sender)
    assert query.get("n") == "6000" and query.get("seed") == "3"
    receiver = session(None, query)
    got, sent = receiver.session_state["data"], sender.session_state["data"]
    assert got.key == sent.key  # the same rows, to the bit
    assert receiver.session_state["fit"].dm.params_.experts.tolist() == \
        sender.session_state["fit"].dm.params_.experts.tolist()


def test_generated_data_travels_in_the_link():
    sender = session("pages/data.py")
    sender.number_input(key="cfg_n").set_value(7000).run()
    sender.button(key="btn_generate").click().run()
    assert sender.session_state["data"].n == 7000
    # AppTest runs a switched-to page without app.py, which draws the share box before the page's
    # button acted: the next run shows the link of the new data.
    sender.run()
    assert shared_query(sender).get("n") == "7000"


def test_typed_true_parameters_travel_in_the_link_to_the_bit():
    # The link and a reload rebuilt custom data from the knobs, not from the parameters typed (or uploaded) on the
    # Data page: intercepts -2/0/2 where 10/-10/0 were typed, with no notice (the audit of 2026-12-06).
    sender = session("pages/data.py", {"src": "custom"})
    text = ('{"gates": [[0, 0, 0], [5, -5, 0]], "experts": [[10, -10, 0], [1, 1, 1]], '
            '"variances": [1, 0.123456789012345, 1]}')
    sender.text_area(key="custom_params_text").input(text).run()
    sender.checkbox(key="use_custom_text").check().run()
    sender.button(key="btn_generate").click().run()
    sender.run()
    sent = sender.session_state["data"]
    assert sent.truth.experts[0].tolist() == [10, -10, 0]
    query = shared_query(sender)
    assert query.get("src") == "custom" and "truth" in query
    receiver = session(None, query)
    got = receiver.session_state["data"]
    assert got.key == sent.key and got.truth.variances.tolist() == [1, 0.123456789012345, 1]
    assert not receiver.warning, [w.value for w in receiver.warning]
    receiver.switch_page("pages/data.py").run()  # the box ticked with the parameters, so Generate keeps them
    assert receiver.checkbox(key="use_custom_text").value
    receiver.button(key="btn_generate").click().run()
    assert receiver.session_state["data"].key == sent.key
    assert not receiver.exception and not [w.value for w in receiver.warning if "truth" in w.value]
    # A broken or misplaced parameter is said, and the knobs are used.
    broken = session(None, {"src": "custom", "truth": '{"gates": [[0]]'})
    assert [w.value for w in broken.warning if w.value.startswith("Ignored URL parameter truth: the link's truth")]
    assert broken.session_state["data"].name.startswith("custom K=")
    elsewhere = session(None, {"truth": text})
    assert [w.value for w in elsewhere.warning if "go with custom data (src=custom)" in w.value]
