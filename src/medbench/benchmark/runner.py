"""A benchmark run: every codec × setting × image of the chosen datasets, into the store."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medbench.benchmark import environment
from medbench.benchmark.cells import image_columns
from medbench.benchmark.executors import (
    InProcessExecutor,
    Job,
    WorkUnit,
    cpu_count,
    make_executor,
)
from medbench.benchmark.store import STORE_NAME, ResultsStore
from medbench.codecs import CodecContext, codec_names, get_codec
from medbench.codecs.base import Codec
from medbench.datasets import Dataset, Record, get_dataset
from medbench.datasets.cache import default_cache_dir
from medbench.datasets.manifest import (
    SplitManifest,
    attach_hashes,
    choose_records,
    uses_manifest,
)
from medbench.datasets.protocols import Protocol, parse_protocol
from medbench.errors import MedbenchError

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """Everything that defines a run (stored with it, reused by ``--resume``)."""

    codecs: list[str] | None = None  # None = every available codec
    datasets: list[str] = field(default_factory=lambda: ["sample"])
    data_root: str | None = None
    protocol: str = "paper"
    size: str | None = None
    bit_depth: str | None = None
    split: str = "test"
    limit: int | None = None
    repeats: int = 3
    models_dir: str = "medbench-models"
    device: str = "auto"
    train_missing: bool = False  # train learned models missing for a requested dataset
    # Where cells are coded; not part of what a run means (--resume may change them).
    executor: str = "local"
    workers: int | None = 1  # None = the machine's cores; 1 = in-process
    scheduler: str | None = None
    # Prepared-image cache: None = $MEDBENCH_CACHE or ~/.cache/medbench; use_cache off = none.
    cache_dir: str | None = None
    use_cache: bool = True

    def protocol_obj(self) -> Protocol:
        return parse_protocol(self.protocol, self.size, self.bit_depth)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


#: RunConfig fields that say where cells are coded, not what is coded.
EXECUTION_FIELDS = ("executor", "workers", "scheduler", "cache_dir", "use_cache")


@dataclass
class RunResult:
    run_id: str
    out: Path
    store_path: Path
    csv_path: Path
    rows: pd.DataFrame
    notes: list[str]
    skipped_files: dict[str, int]


def resolve_codecs(names: list[str] | None, context: CodecContext) -> tuple[list[Codec], list[str]]:
    """Codec instances for ``names`` (None = all available) and notes on those left out."""
    notes: list[str] = []
    if names is None:
        codecs = []
        for name in codec_names():
            codec = get_codec(name, context)
            reason = codec.unavailable_reason()
            if reason:
                notes.append(f"skipped codec {name}: {reason}")
            else:
                codecs.append(codec)
        return codecs, notes
    codecs = []
    for name in names:
        codec = get_codec(name, context)  # unknown names raise UnknownNameError
        reason = codec.unavailable_reason()
        if reason:
            raise MedbenchError(f"codec {name} cannot run here: {reason}")
        codecs.append(codec)
    return codecs, notes


def run(
    config: RunConfig,
    out: Path,
    resume: bool = False,
    progress: Callable[[int], Any] | None = None,
    echo: Callable[[str], Any] = log.info,
    prepare_learned: Callable[..., list[str]] | None = None,
) -> RunResult:
    """Run (or resume) a benchmark and return its rows.

    ``progress(total)`` may return a tqdm-like object; it is updated once per cell.
    ``prepare_learned`` (:func:`medbench.training.missing.prepare_learned`, passed in
    because training sits above the benchmark) notes or trains the learned models a
    requested dataset lacks; None skips that, and then ``train_missing`` is refused.
    """
    out = Path(out)
    store = ResultsStore(out / STORE_NAME)
    if resume:
        run_id = store.latest_run()
        if run_id is None:
            raise MedbenchError(f"--resume found no earlier run in {out}; run without --resume")
        execution = {name: getattr(config, name) for name in EXECUTION_FIELDS}
        config = RunConfig.from_dict({**store.run_info(run_id)["arguments"], **execution})
        echo(f"resuming run {run_id} with its original arguments")
    else:
        run_id = None
    protocol = config.protocol_obj()
    if config.repeats < 0:
        raise MedbenchError(f"--repeats must be >= 0, got {config.repeats}")
    context = CodecContext(models_dir=Path(config.models_dir), device=config.device)
    # Learned codecs: train the models a requested dataset lacks, or note how to.
    if config.train_missing and prepare_learned is None:
        raise MedbenchError("train_missing needs run(prepare_learned=...), see "
                            "medbench.training.missing.prepare_learned")
    learned_notes = [] if prepare_learned is None else prepare_learned(
        config.codecs, config.datasets, context=context, data_root=config.data_root,
        protocol=config.protocol, size=config.size, bit_depth=config.bit_depth,
        train_missing=config.train_missing, echo=echo, progress=progress is not None,
    )
    codecs, notes = resolve_codecs(config.codecs, context)
    notes += learned_notes
    plan = [(codec, setting) for codec in codecs for setting in codec.settings()]
    ranks = {
        (codec.name, setting): rank
        for codec in codecs
        for rank, setting in enumerate(codec.settings())
    }
    if not plan:
        raise MedbenchError("no codec can run; see `medbench codecs` for what is missing")

    # Open every dataset before the run starts, so a wrong --data-root fails at once.
    root = Path(config.data_root) if config.data_root else None
    work: list[tuple[str, Dataset, list[Record]]] = []
    skipped_files: dict[str, int] = {}
    for spec in config.datasets:
        dataset = get_dataset(spec, root)
        manifest = None
        if uses_manifest(dataset):  # splits kept in OUT/manifests/, reused by later runs
            manifest = SplitManifest.in_folder(out, spec, dataset.name)
        records = choose_records(dataset, config.split, config.limit, manifest)
        if manifest is not None:
            records = attach_hashes(dataset, records)
            manifest.collect_hashes(dataset)
            manifest.save()
        skipped_files[spec] = len(dataset.skipped)
        for item in dataset.skipped:
            notes.append(f"skipped file in {spec}: {item.source}: {item.reason}")
        work.append((spec, dataset, records))

    done = store.finished_cells(run_id) if run_id is not None else set()
    units = [
        WorkUnit(spec, record, cells)
        for spec, _, records in work
        for record in records
        if (cells := tuple(
            (codec.name, setting)
            for codec, setting in plan
            if (spec, record.image_id, codec.name, setting) not in done
        ))
    ]
    total = sum(len(unit.cells) for unit in units)
    # The executor starts before the run is recorded, so a wrong --scheduler leaves no trace.
    workers = config.workers
    if config.scheduler is None and units:  # no idle processes for tiny runs
        workers = min(workers or cpu_count(), len(units))
    executor = make_executor(config.executor, workers, config.scheduler)
    cache_dir = None
    if config.use_cache:
        cache_dir = str(Path(config.cache_dir) if config.cache_dir else default_cache_dir())
    job = Job(config.data_root, protocol, config.repeats, config.models_dir, config.device,
              cache_dir)
    datasets = {spec: dataset for spec, dataset, _ in work}
    by_name = {codec.name: codec for codec in codecs}

    if run_id is None:
        run_id = store.new_run(config.to_dict(), environment.describe())
    if units and not isinstance(executor, InProcessExecutor):
        echo(f"coding on {executor.describe()}")
    bar = progress(total) if progress else None
    try:
        with executor:
            for row in executor.rows(job, units, datasets, by_name):
                row.update(run_id=run_id, setting_rank=ranks.get((row["codec"], row["setting"])))
                store.write(row)
                if bar is not None:
                    bar.update(1)
                    if row["status"] == "error":
                        bar.set_postfix_str(f"last error: {row['codec']} {row['setting']}")
        store.set_run_status(run_id, "finished")
    except BaseException:
        store.set_run_status(run_id, "interrupted")
        raise
    finally:
        if bar is not None:
            bar.close()
    rows = store.frame(run_id)
    _count_unreadable(rows, skipped_files, notes)
    csv_path = store.export_csv(run_id, out / "results.csv")
    store.close()
    return RunResult(run_id, out, out / STORE_NAME, csv_path, rows, notes, skipped_files)


def _count_unreadable(rows: pd.DataFrame, skipped: dict[str, int], notes: list[str]) -> None:
    """Add images that turned out unreadable while coding to the skipped-file counts."""
    if rows.empty or "error" not in rows:
        return
    bad = rows[rows["error"].fillna("").str.startswith("image could not be read")]
    for spec, images in bad.groupby("dataset")["image_id"].nunique().items():
        skipped[spec] = skipped.get(spec, 0) + int(images)
        notes.append(f"{images} image(s) of {spec} could not be read (their rows are errors)")


__all__ = ["RunConfig", "RunResult", "run", "resolve_codecs", "image_columns"]
