# Fit a softmax-gated mixture of Gaussian linear experts with flexmix: FLXMRglm(gaussian) experts and
# a FLXPmultinom concomitant (the gate): the model moecore fits.  Called by bench_flexmix.py:
#   Rscript benchmarks/flexmix_fit.R data.csv init.csv K tol max_iter out.csv
# data.csv: columns y, x1..xd ; init.csv: one column "label" (1..K), the initial partition (or "none").
# out.csv: one row per expert k with its coefficients, sigma2 and gate coefficients, plus the
# log-likelihood, iterations, convergence and the fit time (seconds, system.time elapsed).
suppressPackageStartupMessages(library(flexmix))
a <- commandArgs(trailingOnly = TRUE)
dat <- read.csv(a[1])
K <- as.integer(a[3]); tol <- as.numeric(a[4]); maxit <- as.integer(a[5])
xs <- setdiff(names(dat), "y")
f_exp <- as.formula(paste("y ~", paste(xs, collapse = " + ")))
f_gate <- as.formula(paste("~", paste(xs, collapse = " + ")))
ctrl <- list(iter.max = maxit, tolerance = tol, minprior = 0, verbose = 0)
if (a[2] != "none") {
  cl <- read.csv(a[2])$label
  tm <- system.time(fit <- flexmix(f_exp, data = dat, k = K, cluster = cl, model = FLXMRglm(family = "gaussian"),
                                   concomitant = FLXPmultinom(f_gate), control = ctrl))
} else {
  set.seed(1)
  tm <- system.time(fit <- flexmix(f_exp, data = dat, k = K, model = FLXMRglm(family = "gaussian"),
                                   concomitant = FLXPmultinom(f_gate), control = ctrl))
}
pe <- parameters(fit)                      # rows: coef.(Intercept), coef.x1, ..., sigma ; one column per comp
pg <- parameters(fit, which = "concomitant")  # (d+1) x K, first column zero (reference)
Kf <- ncol(pe)
out <- data.frame(k = seq_len(Kf))
for (j in seq_len(nrow(pe) - 1)) out[[paste0("beta", j - 1)]] <- pe[j, ]
out$sigma2 <- pe[nrow(pe), ]^2
for (j in seq_len(nrow(pg))) out[[paste0("alpha", j - 1)]] <- pg[j, ]
out$loglik <- as.numeric(logLik(fit))
out$iterations <- fit@iter
out$converged <- fit@converged
out$time <- tm[["elapsed"]]
out$flexmix_version <- as.character(packageVersion("flexmix"))
out$r_version <- R.version.string
write.csv(out, a[6], row.names = FALSE)
