"""Lessons: one-click demonstrations for a class, each opening the page and plot that tell the story."""

import streamlit as st

from explorer import chrome, lessons, runs

chrome.page("Lessons")
st.caption("Each lesson sets the data and the fit, runs them (a few seconds) and opens the page that tells the "
           "story, with its narration on top. Everything is computed live, with the same code as any fit; change "
           "any setting afterwards to explore further.")

for lesson in lessons.LESSONS:
    with st.container(border=True):
        c1, c2 = st.columns([5, 1])
        c1.markdown(f"**{lesson.title}**  \n{lesson.narration}")
        if c2.button("Run this lesson", key=f"btn_lesson_{lesson.key}", type="primary", width="stretch"):
            with st.spinner(f"Running the lesson: {lesson.title}..."):
                done = runs.attempt("The lesson", lessons.start, lesson)
            if done is not None:
                st.switch_page(lesson.page)

chrome.done()
