"""Command line: ``python -m moecore compare ...`` runs one distributed-versus-global comparison on a
design, a shipped real data set or a CSV/Parquet file; ``choose-k`` tabulates BIC and ICL against K."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from .costs import check_memory, fit_memory_bytes
from .datasets import DATASETS, load_dataset
from .outliers import OutlierWarning, find_outliers
from .params import DISTRIBUTED_PARAMETERS as P
from .params import Param
from .simulation import DESIGNS


def _argument(parser, param: Param, *flags, default=None, help=None):
    """Add ``param`` as an option: type, range, choices and help come from its declaration."""
    kw = {"default": param.default if default is None else default}
    if param.kind == "choice":
        kw["choices"] = list(param.choices)
    else:
        def parse(text):
            try:
                return param.parse(text)
            except (TypeError, ValueError) as exc:
                # argparse names the flag: say only what is wrong with the value.
                msg = str(exc).removeprefix(f"{param.name} ")
                value = text.strip()
                if param.low is not None and param.high is None and msg.startswith("must be in"):
                    msg = f"must be at least {param.low:g}, got {value}: {param.help}"
                raise argparse.ArgumentTypeError(msg) from None
        parse.__name__ = f"{param.kind} in {param.range_text}"
        kw["type"] = parse
    shown = kw["default"] if kw["default"] is not None else (param.none or "None")
    kw["help"] = f"{help or param.help} (default {shown})"
    parser.add_argument(*flags, **kw)


def _data_arguments(parser, default_design, design_help):
    """--design, or --data (a shipped set or a file) with its --response: one source of rows."""
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--design", default=None, choices=sorted(DESIGNS),
                     help=f"{design_help} (default {default_design})")
    src.add_argument("--data", default=None,
                     help=f"a shipped real data set ({', '.join(DATASETS)}) or a CSV, TSV or Parquet file with a "
                          "header row, every column used numeric")
    parser.add_argument("--response", default=None,
                        help="the response column of a --data file (default: its first column); every other column "
                             "is an input")


# One seed for the data and the fits, at most 2**32 - 1: the held-out split (scikit-learn's) takes no more,
# and a larger one was refused in the words of train_test_split's random_state.
SEED = Param("seed", "int", 0, "the seed of the data and of the fits", low=0, high=2**32 - 1)
# The share of a --data file held out when --test-size is not given (None: it is refused with --design).
TEST_SIZE = 0.2


class _OneLineParser(argparse.ArgumentParser):
    """argparse's refusals in one line on stderr (exit status 2), as the command line's own refusals:
    its default printed the whole usage above the message (15 lines for ``compare -M 0``)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (options: {self.prog} -h)\n")


def _build_parser():
    ap = _OneLineParser(
        prog="python -m moecore",
        description="Distributed learning of mixtures of experts (Chamroukhi & Pham).",
    )
    sub = ap.add_subparsers(dest="command", required=True)
    sub.add_parser("designs", help="list the named synthetic designs")
    sub.add_parser("warmup", help="compile the numba kernels into their on-disk cache (make setup runs it, so "
                                  "that the app's first chart does not wait for the compiler)")
    c = sub.add_parser("compare", help="reduction vs global EM vs naive aggregators on a design or your data")
    _data_arguments(c, "separated-2d", "a synthetic design")
    n_rows = Param("n", "int", 100_000, "training samples", low=2)
    _argument(c, replace(n_rows, default=None, none="100000"), "--n", help="training samples drawn from --design")
    _argument(c, Param("n_test", "int", None, "held-out samples drawn from --design", low=1, none="20000"),
              "--n-test")
    _argument(c, Param("test_size", "float", None, "the share of --data's rows held out at random (seeded by --seed)",
                       low=0.0, high=0.9, low_open=True, none=f"{TEST_SIZE:g}"), "--test-size")
    _argument(c, P["n_machines"], "--machines", "-M", default=16)
    _argument(c, replace(P["n_experts"], default=None, none="the design's own K, or a shipped set's suggested K"),
              "--experts", "-K")
    _argument(c, P["support_size"], "--support-size")
    _argument(c, P["n_jobs"], "--n-jobs", default=-1)
    # No dask here: the command line has no scheduler option.
    _argument(c, replace(P["backend"].with_choices(tuple(b for b in P["backend"].choices if b != "dask")),
                         help="where the local fits run: loky/multiprocessing processes, threads, or one after "
                              "another (a dask cluster is the library's: DistributedMoE(backend='dask'))"),
              "--backend")
    for name, flag in [("variance_update", "--variance-update"), ("gate_targets", "--gate-targets"),
                       ("local_check", "--local-check"), ("refine_rounds", "--rounds"), ("pilot", "--pilot")]:
        _argument(c, P[name], flag)
    _argument(c, SEED, "--seed")
    c.add_argument("--csv", default=None, help="also write the table to this CSV file")
    k = sub.add_parser("choose-k", help="BIC and ICL against K for the global EM (and a distributed fit with -M)")
    _data_arguments(k, "teaching-1d", "a synthetic design")
    _argument(k, replace(n_rows, default=None, none="20000"), "--n", help="samples drawn from --design")
    k.add_argument("--ks", default="1,2,3,4,5", help="the Ks to try, comma-separated (default 1,2,3,4,5)")
    _argument(k, replace(P["n_machines"], default=None, none="the global EM only"), "--machines", "-M")
    k.add_argument("--criterion", default="bic", choices=("bic", "icl"), help="what the chosen K minimises")
    _argument(k, P["n_jobs"], "--n-jobs", default=-1)
    _argument(k, SEED, "--seed")
    return ap


def _load_data(data, response):
    """(X (n, d), y (n,), description, K suggested or None) of ``--data``: a shipped set's name, or
    a file read and checked as a machine reads its shard (:func:`moecore.shards.read_shard`)."""
    import re

    from .shards import ShardError, file_columns, read_shard

    if data in DATASETS:
        if response is not None:
            raise ValueError(f"--response is for a --data file; the shipped set {data!r} has its own response.")
        ds = load_dataset(data)
        return ds.X, ds.y, f"{ds.name} ({ds.response_name} ~ {' + '.join(ds.feature_names)})", ds.suggested_experts
    try:
        if not os.path.exists(data):
            raise ShardError(f"shard file {data!r} does not exist and is not a shipped data set "
                             f"({', '.join(DATASETS)})")
        response = file_columns(data)[0] if response is None else response
        X, y, features = read_shard(data, response)
    except ShardError as exc:
        # The reader speaks of machines' shards; here the file is the user's whole data.
        raise ValueError("--data: " + re.sub(r"^shard (file )?", "file ", str(exc))) from None
    found = find_outliers(X, y, feature_names=features, response_name=response)
    if not found.ok:
        # Said here, with the file's row numbers: the fits see a training split, whose own
        # OutlierWarning (ignored by _fits_quiet_on_outliers) would count rows within it.  Counted from 1
        # below the header, as the file's other messages count them ("data row 7"): from 0, a reader of both
        # looked one row off (the audit of 2026-12-06).
        from dataclasses import replace

        from .outliers import Outliers

        by_file = Outliers(tuple(replace(c, rows=c.rows + 1) for c in found.columns), found.n_samples)
        print(f"warning: {by_file.message} Data rows are counted from 1 below the file's header.", file=sys.stderr)
    return X, y, f"{data} ({response} ~ {' + '.join(features)})", None


@contextmanager
def _fits_quiet_on_outliers():
    """The fits' OutlierWarning left out: :func:`_load_data` has said it of the whole file (a command
    line is one thread: the process-wide filter is safe here)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=OutlierWarning)
        yield


def _choose_k(args):
    """The ``choose-k`` command: the table of criteria against K and the chosen K(s)."""
    import pandas as pd

    from .selection import choose_k

    # A flag that does not apply is refused, as compare does: ignored, it left the user thinking it had.
    if args.data is not None:
        if args.n is not None:
            raise ValueError("--n is the size drawn from a --design; --data uses all its rows.")
        X, y, what, _ = _load_data(args.data, args.response)
    else:
        from .simulation import simulate_design

        if args.response is not None:
            raise ValueError("--response is for --data; a --design has its own response.")
        design, n = args.design or "teaching-1d", args.n or 20_000
        sim = simulate_design(design, n, random_state=args.seed)
        X, y, what = sim.X, sim.y, f"design {design}, n = {n}"
    try:
        ks = [int(v) for v in args.ks.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"--ks must be comma-separated integers such as 1,2,3, got {args.ks!r}.") from None
    with _fits_quiet_on_outliers():
        sel = choose_k(X, y, ks, n_machines=args.machines, criterion=args.criterion, random_state=args.seed,
                       distributed_params={"n_jobs": args.n_jobs})
    print(f"{what}: {X.shape[0]} rows, {X.shape[1]} input(s)")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.6g}".format):
        print(sel.table.to_string(index=False))
    print(f"\n{args.criterion.upper()} chooses K = {sel.chosen_global} for the global EM"
          + (f", K = {sel.chosen_distributed} for the distributed fit over M = {args.machines}"
             if sel.chosen_distributed is not None else ""))
    return 0


def _compare_rows(args):
    """(training rows, held-out rows, K, what) of ``compare``: drawn from --design, or --data split at
    random with --test-size held out.  Rows: SimpleNamespace of X (n, d), y (n,), labels, params
    (the true ones; None for data)."""
    from .experiments import data_rows, held_out_split
    from .simulation import simulate_design

    if args.data is None:
        if args.response is not None:
            raise ValueError("--response is for --data; a --design has its own response.")
        if args.test_size is not None:
            raise ValueError("--test-size is the share of --data's rows held out; a --design draws its own held-out "
                             "rows (--n-test).")
        design, n, n_test = args.design or "separated-2d", args.n or 100_000, args.n_test or 20_000
        check_memory(fit_memory_bytes(n + n_test, DESIGNS[design].n_features),
                     f"--n {n} and --n-test {n_test}", "lower --n (or --n-test).")
        s_train, s_test = np.random.SeedSequence(args.seed).spawn(2)
        train = simulate_design(design, n, random_state=s_train)
        test = simulate_design(design, n_test, random_state=s_test)
        return train, test, args.experts or train.params.n_experts, f"design={design}"
    if args.n is not None or args.n_test is not None:
        raise ValueError("--n and --n-test are the sizes drawn from a --design; --data fits its own rows, with "
                         "--test-size of them held out.")
    X, y, what, suggested = _load_data(args.data, args.response)
    K = args.experts or suggested
    if K is None:
        raise ValueError(f"--experts (-K) is needed with --data {args.data}: a file does not say how many experts "
                         f"it holds (python -m moecore choose-k --data {args.data} suggests one).")
    if y.size < 4:
        raise ValueError(f"--data {args.data} holds {y.size} row(s): too few to hold some out and fit the rest.")
    test_size = TEST_SIZE if args.test_size is None else args.test_size
    train_idx, test_idx = held_out_split(y.size, test_size, args.seed)
    return (data_rows(X, y, train_idx), data_rows(X, y, test_idx), K,
            f"data={what}, {test_size:.0%} held out:")


# Rows of the fit that warms the command's processes up before the timed one.
WARM_UP_ROWS = 2000


def _warm_up(train, K, args):
    """One small fit of the settings the command then times, on at most WARM_UP_ROWS of its rows: starting the
    worker processes and loading the compiled kernels (0.45 s of a 6 250-row local fit on loky) was counted in
    the slowest local fit, and the table said the distributed fit was 4.7x slower than the global EM where it was
    1.6x faster (the audit of 2026-12-06).  What fails here is left to the timed fit to say."""
    from . import DistributedMoE, MixtureOfExperts

    n = min(train.y.size, WARM_UP_ROWS)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            DistributedMoE(K, min(args.machines, 2), random_state=0, n_jobs=args.n_jobs, backend=args.backend,
                           refine_rounds=min(args.rounds or 0, 1), pilot=args.pilot).fit(train.X[:n], train.y[:n])
            MixtureOfExperts(K, random_state=0).fit(train.X[:n], train.y[:n])
    except Exception:
        pass  # whatever failed, the timed fit says it in its own words


def _warmup():
    """Tiny fits that call every compiled kernel once (EM, k-means, gates, reduction, screening,
    rounds, non-IID weights); numba writes each to its cache beside the source."""
    import time

    from . import DistributedMoE, simulate_design

    t0 = time.perf_counter()
    sim = simulate_design("teaching-1d", 2400, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        DistributedMoE(3, 4, backend="threading", n_jobs=2, random_state=0, refine_rounds=1).fit(sim.X, sim.y)
        DistributedMoE(3, 4, backend="sequential", random_state=0, split="region").fit(sim.X, sim.y)
    print(f"compiled kernels cached in {time.perf_counter() - t0:.1f} s")
    return 0


def _show_warning(message, category, filename, lineno, file=None, line=None):
    """A warning as the command's user reads it, like its errors: the message, no source line (Python's
    default printed ``<frozen runpy>:88:`` and a library's ``warnings.warn(`` line)."""
    print(f"warning ({category.__name__}): {message}", file=sys.stderr if file is None else file)


def main(argv=None):
    """The command line's exit status: 0 done, 2 refused or failed (a message on stderr, no
    traceback), 130 interrupted (Ctrl-C); output cut short by a closed pipe (``| head``) is no
    error."""
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return _main(argv)
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C): nothing was written.", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader left (| head): the rest of the output goes nowhere, without a traceback at
        # exit when Python flushes stdout into the closed pipe.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except MemoryError as exc:
        print(f"error: {exc or 'not enough memory for this run: lower --n or --n-test.'}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file or the output cannot be read or written (> /dev/full): said, no traceback
        where = f"{exc.filename}" if exc.filename else "the output"
        print(f"error: {where}: {exc.strerror or exc}.", file=sys.stderr)
        return 2


def _csv_refusal(path):
    """Why the table cannot be written to ``path`` (--csv), or None."""
    if not path.strip():
        return "--csv needs a file name (it got an empty one)."
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"--csv {path}: the folder {folder} does not exist."
    if os.path.isdir(path) or not os.access(folder, os.W_OK):
        return f"--csv {path}: cannot write a file there."
    # The folder's permission is not the file's (a read-only file, /proc as root): open it now, as the
    # table will be, and leave no file behind that was not there.
    existed = os.path.exists(path)
    try:
        with open(path, "a"):
            pass
    except OSError as exc:
        return f"--csv {path}: cannot write it ({exc.strerror or exc})."
    if not existed:
        os.remove(path)
    return None


def _main(argv=None):
    args = _build_parser().parse_args(argv)
    if args.command == "warmup":
        return _warmup()
    if args.command == "choose-k":
        try:
            return _choose_k(args)
        except (ValueError, TypeError, RuntimeError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.command == "designs":
        for name, d in DESIGNS.items():
            print(f"{name:16s} K={d.n_experts} d={d.n_features}  {d.description}")
        return 0
    # Before minutes of fitting: a table that cannot be written is refused now.
    refused = None if args.csv is None else _csv_refusal(args.csv)
    if refused:
        print(f"error: {refused}", file=sys.stderr)
        return 2
    import pandas as pd

    from .experiments import compare_methods

    train = None
    try:
        train, test, K, what = _compare_rows(args)
        _warm_up(train, K, args)
        with _fits_quiet_on_outliers():
            comp = compare_methods(
                train.X, train.y, test.X, test.y, K, args.machines,
                labels_test=test.labels, truth=train.params if train.params is not None
                and K == train.params.n_experts else None,
                random_state=args.seed, n_jobs=args.n_jobs, backend=args.backend,
                support_size=args.support_size, variance_update=args.variance_update,
                gate_targets=args.gate_targets, local_check=args.local_check, refine_rounds=args.rounds,
                pilot=args.pilot,
            )
    except (ValueError, TypeError, RuntimeError) as exc:  # RuntimeError: LocalFitError
        # The fits' messages count the rows they see, not the file's.
        rows = "" if train is None or args.data is None else (
            f" (the fits see the {train.y.size} training rows of --data: {args.test_size or TEST_SIZE:.0%} are held "
            "out)")
        print(f"error: {exc}{rows}", file=sys.stderr)
        return 2
    table = comp.table()
    dm = comp.distributed
    t = dm.timings_
    print(f"{what} n={train.y.size} M={args.machines} K={K} S={len(dm.support_indices_)} "
          f"(test n={test.y.size}, seed={args.seed})")
    with pd.option_context("display.width", 200, "display.max_columns", 30, "display.float_format", "{:.4g}".format):
        print(table)
    print(
        f"\ntime column: reduction/average/median = paper's learning time ({dm.costs_.describe()}); "
        f"global = its EM time; both measured after a warm-up fit ({WARM_UP_ROWS:,} rows), which started the "
        f"workers and loaded the compiled kernels.\ndistributed wall clock on this machine: {t['wall']:.3f} s "
        f"(sum of local fits {t['local_sum']:.3f} s)"
    )
    if args.csv is not None:
        try:
            table.to_csv(args.csv)
        except OSError as exc:
            print(f"error: could not write --csv {args.csv}: {exc.strerror or exc}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
