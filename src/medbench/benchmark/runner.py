"""A benchmark run: every codec × setting × image of the chosen datasets, into the store."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from medbench.benchmark import environment
from medbench.benchmark.cells import code_image, image_columns
from medbench.benchmark.store import STORE_NAME, ResultsStore
from medbench.codecs import CodecContext, codec_names, get_codec
from medbench.codecs.base import Codec
from medbench.datasets import Dataset, Record, get_dataset
from medbench.datasets.protocols import Protocol, parse_protocol
from medbench.datasets.splits import SPLITS, split_of
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

    def protocol_obj(self) -> Protocol:
        return parse_protocol(self.protocol, self.size, self.bit_depth)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RunConfig:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)


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


def select_records(dataset: Dataset, spec: str, split: str, limit: int | None) -> list[Record]:
    """The dataset's records in ``split`` (or all), sorted by id, at most ``limit``."""
    if split != "all" and split not in SPLITS:
        raise MedbenchError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}, all")
    chosen = []
    for record in dataset.records():
        record_split = split_of(dataset.name, record.group)
        if split in ("all", record_split):
            chosen.append((record, record_split))
    chosen.sort(key=lambda pair: pair[0].image_id)
    if limit is not None:
        chosen = chosen[:limit]
    return [Record(r.image_id, r.group, r.source, {**r.meta, "split": s}) for r, s in chosen]


def run(
    config: RunConfig,
    out: Path,
    resume: bool = False,
    progress: Callable[[int], Any] | None = None,
    echo: Callable[[str], Any] = log.info,
) -> RunResult:
    """Run (or resume) a benchmark and return its rows.

    ``progress(total)`` may return a tqdm-like object; it is updated once per cell.
    """
    out = Path(out)
    store = ResultsStore(out / STORE_NAME)
    if resume:
        run_id = store.latest_run()
        if run_id is None:
            raise MedbenchError(f"--resume found no earlier run in {out}; run without --resume")
        config = RunConfig.from_dict(store.run_info(run_id)["arguments"])
        echo(f"resuming run {run_id} with its original arguments")
    else:
        run_id = None
    protocol = config.protocol_obj()
    if config.repeats < 0:
        raise MedbenchError(f"--repeats must be >= 0, got {config.repeats}")
    context = CodecContext(models_dir=Path(config.models_dir), device=config.device)
    codecs, notes = resolve_codecs(config.codecs, context)
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
        records = select_records(dataset, spec, config.split, config.limit)
        skipped_files[spec] = len(dataset.skipped)
        for item in dataset.skipped:
            notes.append(f"skipped file in {spec}: {item.source}: {item.reason}")
        work.append((spec, dataset, records))

    if run_id is None:
        run_id = store.new_run(config.to_dict(), environment.describe())
    done = store.finished_cells(run_id)
    total = sum(
        1
        for spec, _, records in work
        for record in records
        for codec, setting in plan
        if (spec, record.image_id, codec.name, setting) not in done
    )
    bar = progress(total) if progress else None
    try:
        for spec, dataset, records in work:
            for record in records:
                todo = [
                    (codec, setting)
                    for codec, setting in plan
                    if (spec, record.image_id, codec.name, setting) not in done
                ]
                if todo:
                    for row in _rows_for_record(dataset, record, protocol, todo, config.repeats):
                        rank = ranks[(row["codec"], row["setting"])]
                        row.update(run_id=run_id, dataset=spec, setting_rank=rank)
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
    csv_path = store.export_csv(run_id, out / "results.csv")
    store.close()
    return RunResult(run_id, out, out / STORE_NAME, csv_path, rows, notes, skipped_files)


def _rows_for_record(
    dataset: Dataset,
    record: Record,
    protocol: Protocol,
    todo: list[tuple[Codec, str]],
    repeats: int,
) -> Iterable[dict[str, Any]]:
    """Rows for one record; a record that cannot be read becomes one error row per cell."""
    context = {
        "split": record.meta.get("split"),
        "group": record.group,
        "source": record.source,
        "body_part": record.meta.get("body_part"),
    }
    try:
        image = dataset.load(record)
        image = protocol.apply(image.replace(meta={**image.meta, **context}))
    except Exception as exc:  # one bad image never ends a run
        message = f"{type(exc).__name__}: {exc}" if not isinstance(exc, MedbenchError) else str(exc)
        base = {
            "image_id": record.image_id,
            "split": context["split"],
            "group_id": record.group,
            "source": record.source,
            "body_part": context["body_part"],
            "protocol": protocol.name,
        }
        for codec, setting in todo:
            yield {**base, "codec": codec.name, "setting": setting, "codec_kind": codec.kind,
                   "status": "error", "error": f"image could not be read: {message}"}
        return
    yield from code_image(image, todo, repeats)


__all__ = ["RunConfig", "RunResult", "run", "resolve_codecs", "select_records", "image_columns"]
