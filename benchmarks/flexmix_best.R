# Best of nrep random starts of flexmix on one data set: FLXMRglm(gaussian) experts with a FLXPmultinom
# concomitant (the softmax gate), the model moecore fits.  Called by bench_flexmix_real.py:
#   Rscript benchmarks/flexmix_best.R data.csv K nrep out.csv
# data.csv: columns y, x1..xd.  out.csv: one row: log-likelihood of the best start, components kept,
# the time of all nrep starts (system.time elapsed), the versions.
suppressPackageStartupMessages(library(flexmix))
a <- commandArgs(trailingOnly = TRUE)
dat <- read.csv(a[1])
K <- as.integer(a[2]); nrep <- as.integer(a[3])
xs <- setdiff(names(dat), "y")
f_exp <- as.formula(paste("y ~", paste(xs, collapse = " + ")))
f_gate <- as.formula(paste("~", paste(xs, collapse = " + ")))
set.seed(1)
# minprior = 0 keeps all K components, as moecore does; the default tolerance and iteration limit
# are tightened (1e-8 instead of 1e-6) so that a start stops nearer its maximum.
ctrl <- list(iter.max = 1000, tolerance = 1e-8, minprior = 0, verbose = 0)
tm <- system.time(fit <- stepFlexmix(f_exp, data = dat, k = K, nrep = nrep, model = FLXMRglm(family = "gaussian"),
                                     concomitant = FLXPmultinom(f_gate), control = ctrl, verbose = FALSE))
out <- data.frame(loglik = as.numeric(logLik(fit)), k_kept = fit@k, time = tm[["elapsed"]],
                  flexmix_version = as.character(packageVersion("flexmix")), r_version = R.version.string)
write.csv(out, a[4], row.names = FALSE)
