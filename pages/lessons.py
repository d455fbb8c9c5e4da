"""Lessons: one-click demonstrations for a class, each opening the page and plot that tell the story."""

import streamlit as st

from explorer import chrome, lessons, runs

chrome.page("Lessons")
st.caption("Each lesson sets the data and the fit, runs them (a few seconds) and opens the page that tells the "
           "story, with its narration on top. Everything is computed live, with the same code as any fit; change "
           "any setting afterwards to explore further. End the lesson (in its banner) to get your own data, fit and "
           "settings back.")

for lesson in lessons.LESSONS:
    with st.container(border=True):
        row = st.container(horizontal=True)  # the button keeps its words beside the text in a narrow window
        row.markdown(f"**{lesson.title}**  \n{lesson.narration}")
        if row.button("Run this lesson", key=f"btn_lesson_{lesson.key}", type="primary"):
            with st.spinner(f"Running the lesson: {lesson.title}..."):
                done = runs.attempt("The lesson", lessons.start, lesson)
            if done is not None:
                st.switch_page(lesson.page)

with st.expander("A link to each lesson, for a class"):
    st.caption("Whoever opens one of these links gets the lesson run and its page open, with the narration; a "
               "class that opens the same link shares one computation of it.")
    for lesson in lessons.LESSONS:
        st.markdown(f"**{lesson.title}**")
        st.code(chrome.lesson_url(lesson), language=None, wrap_lines=True)

chrome.done()
