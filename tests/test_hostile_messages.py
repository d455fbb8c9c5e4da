"""Issue 22: user strings in the Data page's error messages are text, not Markdown.

st.error renders Markdown: a column, cell or file name quoted in a message must not become a
link or an image (the viewer's browser would fetch the address).  The names are escaped where
the message is built (explorer.io), so the message's own Markdown still works.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # explorer/ is not installed

from streamlit.testing.v1 import AppTest  # noqa: E402

LINK = "[x](http://evil.example)"
IMAGE = "![i](http://evil.example/p.png)"


def _data_page():
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120).run()
    at.switch_page("pages/data.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _errors(at):
    assert not at.exception, [e.value for e in at.exception]
    return " ".join(e.value for e in at.error)


def test_a_column_named_like_a_link_is_quoted_as_text_in_the_error():
    rows = "\n".join(f"{i / 10},{i % 7},{IMAGE if i == 3 else i}" for i in range(30))
    at = _data_page()
    at.file_uploader(key="csv_upload").upload("m.csv", f"x,y,{LINK}\n{rows}".encode(), "text/csv").run()
    at.selectbox(key="csv_y").select("y").run()
    at.multiselect(key="csv_x").set_value([LINK]).run()
    at.button(key="btn_use_csv").click().run()
    text = _errors(at)
    assert "is not numeric: row 5 of the file holds" in text  # the message itself is intact
    assert r"'\[x\]\(http\:" in text and r"'\!\[i\]\(http\:" in text  # both names shown as text
    assert LINK not in text and IMAGE not in text


def test_a_file_named_like_an_image_is_quoted_as_text_in_the_error():
    at = _data_page()
    at.file_uploader(key="csv_upload").upload(f"{IMAGE}.csv", b"", "text/csv").run()
    text = _errors(at)
    assert "is empty" in text and "](http" not in text
