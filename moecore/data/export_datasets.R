# Export the small real data sets moecore ships (moecore/datasets.py) from the R packages that
# distribute them.  Run once from this folder:  Rscript export_datasets.R
# Each file: the response first, then the inputs, no row names, gzip-compressed CSV.
suppressPackageStartupMessages({library(mixtools); library(MASS)})
write_gz <- function(df, name) {
  con <- gzfile(paste0(name, ".csv.gz"), "w")
  write.csv(df, con, row.names = FALSE)
  close(con)
}
data(tonedata, package = "mixtools")
write_gz(data.frame(tuned = tonedata$tuned, stretchratio = tonedata$stretchratio), "tonedata")
data(NOdata, package = "mixtools")
write_gz(data.frame(Equivalence = NOdata$Equivalence, NO = NOdata$NO), "nodata")
write_gz(data.frame(medv = MASS::Boston$medv, lstat = MASS::Boston$lstat), "boston")
write_gz(data.frame(accel = MASS::mcycle$accel, times = MASS::mcycle$times), "mcycle")
write_gz(data.frame(eruptions = datasets::faithful$eruptions, waiting = datasets::faithful$waiting), "faithful")
cat("mixtools", as.character(packageVersion("mixtools")), "MASS", as.character(packageVersion("MASS")),
    R.version.string, "\n")
