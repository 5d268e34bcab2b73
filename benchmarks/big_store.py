"""``medbench report`` and ``compare`` on stores of 10⁵–10⁷ rows (a script, not a suite).

    python benchmarks/big_store.py build OUT --rows 1000000 [--from RESULTS] [--shift DB]
    python benchmarks/big_store.py write [--rows 1e5] [--batch 1 100 1000]
    python benchmarks/big_store.py time --rows 1e5 1e6 1e7 [--work /tmp/bigstore]
                                        [--src src] [--no-compare] [--keep]
                                        [--cache as-is|cold|warm]

``build`` makes a results folder of ``--rows`` rows from a real small run (default the
committed regression run, ``tests/reference/sample-regression.csv``: 4 tiles of two CR
radiographs × 23 settings of JPEG, JPEG 2000 and the shipped hyperprior models,
rate-matched cells included), replicated under new image ids as a user's big run would
look: copy ``k`` of an image is ``<id>-<k>``, the images of one copy are one patient
(``group_id`` ``p<k>``, so intervals are cluster bootstraps over patients, as on NIH
ChestX-ray14), and each copy's PSNR moves by a few hundredths of a dB so images differ.
``--shift`` adds that many dB to every PSNR (the second store of a comparison).

``write`` measures the one writer of a run: rows/s into a fresh store committing every
row (``ResultsStore.write``, as a run did) and in batches (``write_many``).

``time`` builds the stores it lacks under ``--work`` and times, each in a fresh process
with the medbench of ``--src`` (give an older checkout's ``src`` for "before"):
``medbench report`` of each store and ``medbench compare`` of two stores of the same size,
printing wall time, peak resident memory (the child's ``ru_maxrss``) and the load average
when it ran. ``--keep`` keeps the stores (several GB at 10⁷ rows). ``--cache`` sets the
page cache before each command: ``cold`` (a store read from disk) and ``warm`` (already in
memory) differ most at 10⁷ rows, where two stores no longer fit in memory together.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "tests" / "reference" / "sample-regression.csv"
RUN_ID = "20261206T000000Z-big000"
#: Rows inserted per transaction while building.
CHUNK = 200_000


def build(out: Path, rows: int, seed: Path = SEED, shift: float = 0.0) -> Path:
    """A results folder of ``rows`` rows (rounded down to whole copies of the seed run)."""
    sys.path.insert(0, str(ROOT / "src"))
    import pandas as pd

    from medbench.benchmark.rows import COLUMNS
    from medbench.benchmark.store import STORE_NAME, ResultsStore

    base = pd.read_csv(seed) if seed.suffix == ".csv" else None
    if base is None:  # a results folder: its latest run
        store = ResultsStore.open_existing(seed)
        base = store.frame(store.run_or_latest())
        store.close()
    copies = max(1, rows // len(base))
    out.mkdir(parents=True, exist_ok=True)
    path = out / STORE_NAME
    if path.exists():
        path.unlink()
    ResultsStore(path).close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")  # a scratch file: no crash safety needed
    db.execute("PRAGMA synchronous=OFF")
    names = [c for c in COLUMNS if c in base]
    seed_cols = ", ".join(f"{n} {COLUMNS[n].replace(' NOT NULL', '')}" for n in names)
    db.execute(f"CREATE TEMP TABLE seed ({seed_cols})")
    values = base[names].astype(object).where(base[names].notna(), None)
    db.executemany(f"INSERT INTO seed VALUES ({', '.join('?' for _ in names)})",
                   [[_plain(v) for v in r] for r in values.itertuples(index=False)])
    moved = {
        "run_id": f"'{RUN_ID}'",
        "image_id": "s.image_id || '-' || c.k",
        "source": "s.source || '-' || c.k",
        "group_id": "'p' || c.k",
        "group_kind": "'patient'",
        # a per-copy move of -0.05..+0.05 dB (inf stays inf), and the mse with it
        "psnr": f"s.psnr + ((c.k * 7919) % 101 - 50) / 1000.0 + {shift!r}",
        "mse": f"s.mse * power(10, -(((c.k * 7919) % 101 - 50) / 1000.0 + {shift!r}) / 10)",
    }
    select = ", ".join(moved.get(n, f"s.{n}") for n in names)
    db.execute("CREATE TEMP TABLE copies (k INTEGER PRIMARY KEY)")
    started = time.perf_counter()
    for first in range(0, copies, max(1, CHUNK // len(base))):
        last = min(copies, first + max(1, CHUNK // len(base)))
        with db:
            db.execute("DELETE FROM copies")
            db.executemany("INSERT INTO copies VALUES (?)", [(k,) for k in range(first, last)])
            db.execute(f"INSERT INTO results ({', '.join(names)}) "
                       f"SELECT {select} FROM copies c CROSS JOIN seed s")
    with db:
        db.execute("INSERT INTO runs VALUES (?, ?, ?, 'finished', ?, ?)",
                   (RUN_ID, "2026-12-06T00:00:00+00:00", "2026-12-06T01:00:00+00:00",
                    json.dumps({"datasets": ["sample"], "protocol": "paper",
                                "replicated": copies}), json.dumps({"python": "3.x"})))
    db.close()
    print(f"built {copies * len(base):,} rows in {time.perf_counter() - started:.0f} s: "
          f"{path} ({path.stat().st_size / 2**30:.2f} GiB)", flush=True)
    return out


def _plain(value: object) -> object:
    if hasattr(value, "item"):
        value = value.item()
    return int(value) if isinstance(value, bool) else value


def measure(command: list[str], src: Path) -> tuple[float, float, int]:
    """(wall s, peak RSS GiB, exit status) of ``command`` in a fresh process."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
             "rc = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
             "print(time.perf_counter() - t, "
             "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, rc)")
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", probe, *command], env=env,
                          capture_output=True, text=True, check=True)
    wall, rss_kib, rc = done.stdout.split()
    return float(wall), int(rss_kib) / 2**20, int(rc)


def write_rate(folder: Path, rows: int, batches: list[int]) -> None:
    """Rows/s of ``ResultsStore.write`` (a commit a row) and ``write_many`` in batches."""
    sys.path.insert(0, str(ROOT / "src"))
    import pandas as pd

    from medbench.benchmark.rows import COLUMNS, ResultRow
    from medbench.benchmark.store import STORE_NAME, ResultsStore

    base = pd.read_csv(SEED)
    base = base.astype(object).where(base.notna(), None)
    made = [ResultRow(**{k: v for k, v in r.items() if k in COLUMNS})
            for r in base.to_dict("records")]
    template = [(r, r.image_id) for r in made]
    print("| commit every | rows | wall s | rows/s | load (1/5/15 min) |")
    print("| ---: | ---: | ---: | ---: | --- |", flush=True)
    for batch in batches:
        shutil.rmtree(folder, ignore_errors=True)
        store = ResultsStore(folder / STORE_NAME)
        run_id = store.new_run({}, {})
        before = load()
        started = time.perf_counter()
        pending = []
        for i in range(rows):
            row, image = template[i % len(template)]
            row.run_id, row.image_id = run_id, f"{image}-{i // len(template)}"
            pending.append(ResultRow(**row.columns()))
            if len(pending) >= batch:
                store.write_many(pending) if batch > 1 else store.write(pending[0])
                pending = []
        if pending:
            store.write_many(pending)
        wall = time.perf_counter() - started
        store.close()
        print(f"| {batch} | {rows:,} | {wall:.1f} | {rows / wall:,.0f} | {before} |",
              flush=True)
    shutil.rmtree(folder, ignore_errors=True)


def prepare_cache(how: str, folders: list[Path]) -> None:
    """The page cache as ``--cache`` asks, before a timed command."""
    if how == "cold":
        os.sync()
        try:
            Path("/proc/sys/vm/drop_caches").write_text("1\n")
        except OSError as exc:
            sys.exit(f"--cache cold empties the page cache, which needs Linux and root ({exc})")
    elif how == "warm":
        for folder in folders:
            with open(folder / "results.sqlite", "rb") as file:
                while file.read(1 << 24):
                    pass


def load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    b = sub.add_parser("build")
    b.add_argument("out", type=Path)
    b.add_argument("--rows", type=float, required=True)
    b.add_argument("--from", dest="seed", type=Path, default=SEED)
    b.add_argument("--shift", type=float, default=0.0)
    w = sub.add_parser("write")
    w.add_argument("--rows", type=float, default=1e5)
    w.add_argument("--batch", type=int, nargs="+", default=[1, 100, 1000])
    w.add_argument("--work", type=Path, default=Path("/tmp/bigstore/write"))
    t = sub.add_parser("time")
    t.add_argument("--rows", type=float, nargs="+", default=[1e5, 1e6, 1e7])
    t.add_argument("--work", type=Path, default=Path("/tmp/bigstore"))
    t.add_argument("--src", type=Path, default=ROOT / "src")
    t.add_argument("--no-compare", action="store_true")
    t.add_argument("--keep", action="store_true")
    t.add_argument("--cache", choices=["as-is", "cold", "warm"], default="as-is",
                   help="before each command: leave the page cache as it is, empty it "
                        "(Linux, as root: a store read from disk, as after a reboot), or "
                        "read the command's stores into it (as right after a run)")
    args = parser.parse_args()
    if args.what == "write":
        write_rate(args.work, int(args.rows), args.batch)
        return
    if args.what == "build":
        build(args.out, int(args.rows), args.seed, args.shift)
        return
    cli = [sys.executable, "-m", "medbench.cli"]
    print(f"medbench from {args.src.resolve()}; {os.cpu_count()} CPUs; "
          f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB",
          flush=True)
    print("| rows | command | wall s | peak RSS GiB | exit | load (1/5/15 min) |")
    print("| ---: | --- | ---: | ---: | ---: | --- |", flush=True)
    for rows in (int(r) for r in args.rows):
        tag = f"{rows:.0e}".replace("+0", "")
        base, new = args.work / f"base-{tag}", args.work / f"new-{tag}"
        if not (base / "results.sqlite").exists():
            build(base, rows)
        jobs = [("report", [*cli, "report", str(base), "--out", str(args.work / "report"),
                            "--no-visual"])]
        if not args.no_compare:
            if not (new / "results.sqlite").exists():
                build(new, rows, shift=-0.01)
            jobs.append(("compare", [*cli, "compare", str(base), str(new)]))
        for name, command in jobs:
            prepare_cache(args.cache, [base] if name == "report" else [base, new])
            before = load()
            wall, rss, rc = measure(command, args.src)
            print(f"| {rows:,} | {name} | {wall:.1f} | {rss:.2f} | {rc} | {before} |",
                  flush=True)
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
            shutil.rmtree(new, ignore_errors=True)


if __name__ == "__main__":
    main()
