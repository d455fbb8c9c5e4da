"""Learn: the method for a student, with a live MM reduction to step through."""

import math

import streamlit as st

from explorer import chrome, runs, settings, walk

chrome.page("Learn: distributed mixtures of experts in six steps")

with st.expander("1. The model: a mixture of experts", expanded=True):
    st.markdown(
        "Each input $x$ (with an intercept, $\\tilde x = (1, x)$) is routed by a **softmax gate** to one of "
        "$K$ linear **experts**:"
    )
    # One formula a line: on one line the three ran past a 1024 px window's column (cut at "f(y | x) =").
    st.latex(r"\pi_k(x) = \frac{e^{\alpha_k^\top \tilde x}}{\sum_j e^{\alpha_j^\top \tilde x}},")
    st.latex(r"y \mid x, z{=}k \sim \mathcal N(\beta_k^\top \tilde x, \sigma_k^2),")
    st.latex(r"f(y\mid x) = \sum_k \pi_k(x)\, \mathcal N(y; \beta_k^\top \tilde x, \sigma_k^2).")
    st.markdown("On the Data page the points are coloured by the expert that generated them; the gate decides "
                "which line is active where.")
with st.expander("2. EM: fitting one machine's model"):
    st.markdown(
        "EM alternates an **E-step**, the responsibilities "
        "$\\tau_{ik} = \\pi_k(x_i)\\mathcal N(y_i;\\beta_k^\\top\\tilde x_i,\\sigma_k^2)/f(y_i\\mid x_i)$, "
        "with an **M-step**: each expert is a weighted least-squares fit with weights $\\tau_{ik}$, and the gate "
        "a softmax regression on the soft targets $\\tau_{ik}$ (a Newton step). The log-likelihood never decreases: "
        "see the EM curves on the Distributed fit page.")
with st.expander("3. Distributing: M machines, then a large mixture"):
    st.markdown(
        "The $n$ samples are split over $M$ machines; machine $m$ fits its own $K$-expert model by EM on its "
        "$n_m$ samples, in parallel with the others. Put together with weights $w_m = n_m / n$, they form a "
        "**large mixture** of $L = MK$ components whose gates $w_m \\pi^{(m)}_j(x)$ still sum to one. It is a "
        "valid model, but $M$ times too big, and its experts come in $M$ noisy copies.\n\n"
        "**When the machines hold different data** (one region, one site each), the constant weight $n_m / n$ is "
        "wrong: a machine that never saw inputs near $x$ still gets its share there, and its gates and experts only "
        "extrapolate. The right weight is $w_m(x) = P(\\text{machine } m \\mid x)$, which the server estimates "
        "from the supporting sample (each point knows its machine); the gates $w_m(x)\\,\\pi^{(m)}_j(x)$ still sum "
        "to one. Try a split by region with constant and with covariate weights on the Distributed fit page.")
with st.expander("4. Reduction by optimal transport"):
    st.markdown(
        "We look for a $K$-expert model $g$ (experts $b_k$, variances $v_k$) close to the large mixture. The cost of "
        "moving component $l$ to expert $k$ at $x$ is the Kullback-Leibler divergence between the two Gaussians:")
    st.latex(r"c_x(l,k) = \tfrac12\Big[\log\frac{v_k}{\sigma_l^2} + \frac{\sigma_l^2}{v_k} + "
             r"\frac{(\beta_l^\top\tilde x - b_k^\top\tilde x)^2}{v_k} - 1\Big].")
    st.markdown(
        "A **transport plan** $P_s$ at each point $x_s$ of a supporting sample moves each component's gate mass to "
        "the reduced experts; the objective is the average cheapest transport cost "
        "$R(g) = \\frac1S\\sum_s \\min_{P_s}\\sum_{l,k} P_s(l,k)\\,c_{x_s}(l,k)$.")
with st.expander("5. The MM algorithm", expanded=True):
    st.markdown(
        "**(a) plan step**: with the experts fixed, the best plan sends all of component $l$'s mass at $x_s$ to its "
        "cheapest expert. **(b) expert step**: with the plan fixed, each $b_k$ is a weighted least-squares fit of "
        "the local expert means sent to it, and $v_k$ their average variance plus spread. Neither step can increase "
        "$R$, so $R$ goes down until it stalls. Finally the reduced gate is fitted to the mass the plan sends to each "
        "expert. Step through it below.  \n"
        "**Small shards.** A local line fitted to few points is noisy, and that noise shows up in the spread, so "
        "$v_k$ comes out too large. By default each machine also sends each expert's variance *net* of its own "
        "line's noise (one number per expert), and the final $v_k$ uses those: on 1 562-row shards a small expert's "
        "variance error fell from 5x to 1.3x the global EM's. Set *Reduced variances* to *exact* for the paper's "
        "update.")

with st.expander("6. Can we trust the result? Screening and refinement rounds"):
    st.markdown(
        "**Screening.** EM can stop in a poor local optimum, for example with two experts merged into one wide "
        "expert. With randomly split data every machine estimates the same model, so the server scores each local "
        "model on the supporting sample $(x_s, y_s)$: a poor fit scores far below the others and would drag the "
        "reduction with it. That machine refits from the best-scoring machine's model (or is left out).  \n"
        "**Refinement rounds.** The reduction is one-shot: each machine sends its model once. A round spends one "
        "more exchange: every machine runs the E-step of the reduced model on its own data and sends back sums "
        "($\\sum \\tau_{ik}\\tilde x_i\\tilde x_i^\\top$, $\\sum \\tau_{ik}\\tilde x_i y_i$, the gate's gradient and "
        "Hessian), never data. The server adds them up and takes the M-step: each round is exactly one EM iteration "
        "on all the data. The trade-off of the method is accuracy against rounds of communication: see the live "
        "example below.")

st.divider()
st.subheader("Live example: reduce M local fits of the teaching design, one MM iteration at a time")
c1, c2, c3 = st.columns(3)
M = settings.widget("learn_M", where=c1)
init = settings.widget("learn_init", where=c2)
seed = settings.widget("learn_seed", where=c3)
walk.live_example(int(M), int(seed), init)
dm = runs.learn_example(int(M), int(seed), init).model

st.subheader("This example, screened and refined")
rep = dm.screening_
st.markdown(
    f"Support scores (mean log-likelihood per point) of the {len(rep.scores)} local fits: "
    + ", ".join(f"machine {m + 1}: {v:.3f}" for m, v in enumerate(rep.scores))
    + (f". Threshold {rep.threshold.min():.3f}: " if all(map(math.isfinite, rep.threshold)) else ". ")
    + ("no machine flagged." if not rep.flagged else
       "flagged: " + ", ".join(f"machine {m + 1} ({a})" for m, a in rep.actions.items()) + "."))
rounds = runs.learn_rounds(int(M), int(seed))
st.dataframe(
    {"refinement rounds": [r["rounds"] for r in rounds],
     "log-likelihood per point (all machines)": [round(r["loglik"], 5) for r in rounds],
     "gate MSE against the global EM": [float(f"{r['gates_global']:.3g}") for r in rounds],
     "gate MSE against the truth": [float(f"{r['gates']:.3g}") for r in rounds]},
    hide_index=True)
st.caption("Round 0 is the one-shot reduction. Each round is one exact EM iteration on the pooled data, so the "
           "log-likelihood never goes down and the parameters move towards the global EM's maximum-likelihood fit. "
           "With only 2 000 points that fit's own gates are far from the truth, so the error against the truth "
           "need not fall.")

chrome.done()
