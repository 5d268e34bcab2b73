"""A benchmark run: every codec × setting × image of the chosen datasets, into the store.

:func:`plan_run` decides what a run codes; :func:`execute` codes it into the store. A new
run records the images it chose (with their files' SHA-256 where the dataset keeps a
manifest); ``--resume`` codes exactly those images again: an image whose file is gone gets
error rows ("file no longer present"), one whose file changed has its old rows deleted and
all its cells coded again, and a cell that was in flight when the process died (its codec
crashed it) becomes an error row instead of being tried again.
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd

from medbench.benchmark import environment
from medbench.benchmark.cells import Job, learned_batch
from medbench.benchmark.executors import cpu_count, make_executor
from medbench.benchmark.metrics import parse_metrics
from medbench.benchmark.metrics.display import CHOICES as DISPLAY_CHOICES
from medbench.benchmark.observers.experiment import ObserverSpec, parse_spec
from medbench.benchmark.observers.summary import summarize as summarize_observer
from medbench.benchmark.resume import (
    CALL_ONLY_FIELDS,
    EXECUTION_FIELDS,
    describe_changes,
    of_type,
    resumed_config,
)
from medbench.benchmark.rows import ResultRow, WorkUnit, error_rows
from medbench.benchmark.seen import seen_warnings
from medbench.benchmark.store import STORE_NAME, ResultsStore, StoreWriteError
from medbench.benchmark.targets import parse_targets
from medbench.benchmark.timing import MAX_REPEATS
from medbench.codecs import CodecContext, _openjpeg, codec_names, get_codec
from medbench.codecs.base import Codec
from medbench.datasets import Dataset, Record, get_dataset
from medbench.datasets.cache import default_cache_dir
from medbench.datasets.grouping import group_by, read_groups
from medbench.datasets.manifest import choose_with_manifest
from medbench.datasets.protocols import Protocol, parse_protocol
from medbench.errors import MedbenchError
from medbench.folders import check_outside, write_problem
from medbench.text import unique_names

log = logging.getLogger(__name__)

#: Rows the writer commits together at most, and the time since its last commit after
#: which a row is committed at once (rows arriving slower are each committed alone).
WRITE_BATCH = 1000
WRITE_SECONDS = 0.5


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
    seed: int = 0  # of the --limit sample
    repeats: int | None = None  # timed encode+decode pairs; None = automatic
    models_dir: str = "medbench-models"
    device: str = "auto"
    train_missing: bool = False  # train learned models missing for a requested dataset
    masks: str | None = None  # --masks folder of region masks (benchmark.regions)
    milestones: bool = False  # also code learned models' milestone checkpoints
    target: str | None = None  # --target: rate-matching cells (benchmark.targets)
    keep_pixels: bool = False  # --keep-pixels: whole decodes of target cells (benchmark.pixels)
    # --metrics: auto|basic|all|vif,gmsd,... (benchmark.metrics.parse_metrics)
    metrics: str = "auto"
    display: str | None = None  # --display: a VOI window (benchmark.metrics.display)
    # --observer nodules: the detection experiment (benchmark.observers); its sites are
    # drawn with --seed.
    observer: str | None = None
    nodule_sizes: str | None = None  # mm, comma-separated
    nodule_contrasts: str | None = None  # fractions of the peak, comma-separated
    nodule_sites: int | None = None  # sites per condition per image
    # folder: datasets' groups (datasets.grouping): a CSV table or a path expression.
    groups: str | None = None
    group_by: str | None = None
    # Where cells are coded; not part of what a run means (--resume may change them).
    executor: str = "local"
    workers: int | None = 1  # None = the machine's cores; 1 = in-process
    scheduler: str | None = None
    # Images a learned cell codes in one call: a number, or auto (benchmark.cells).
    learned_batch: str | int = "auto"
    # Prepared-image cache: None = $MEDBENCH_CACHE or ~/.cache/medbench; use_cache off = none.
    cache_dir: str | None = None
    use_cache: bool = True
    # --trust-byo: the byo spec folder whose code may run (CALL_ONLY_FIELDS).
    trust_byo: str | None = None
    # What the command line does once the cells are coded (kept, so --resume does it too).
    report: bool = True  # write OUT/report (`run --no-report`: False)
    write_dicom: str | None = None  # `run --write-dicom DIR`, as an absolute path
    overwrite_dicom: bool = False

    def protocol_obj(self) -> Protocol:
        return parse_protocol(self.protocol, self.size, self.bit_depth)

    def observer_spec(self) -> ObserverSpec | None:
        """The ``--observer`` experiment, or None (a bad option raises MedbenchError)."""
        return parse_spec(self.observer, self.nodule_sizes, self.nodule_contrasts,
                          self.nodule_sites, self.seed)

    def trusted_byo(self) -> Path | None:
        """The byo spec folder given by ``--trust-byo``, for codecs named in ``--codecs``
        only: None with ``--codecs all`` (and :func:`resolve_codecs` drops it there too)."""
        return Path(self.trust_byo) if self.trust_byo and self.codecs is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k not in CALL_ONLY_FIELDS}

    @classmethod
    def from_dict(cls, values: dict[str, Any], where: str = "the stored run") -> RunConfig:
        """The config stored as ``values`` (unknown keys ignored, missing ones default,
        call-only fields never read).

        Raises
        ------
        MedbenchError
            A value is not of its field's type (a damaged or hand-edited store); ``where``
            names the run in the message.
        """
        known = {k: v for k, v in values.items()
                 if k in cls.__dataclass_fields__ and k not in CALL_ONLY_FIELDS}
        for name, value in known.items():
            kinds = cls.__dataclass_fields__[name].type
            if not of_type(value, str(kinds)):
                raise MedbenchError(f"{where} is damaged: its argument {name} is {value!r}, "
                                    f"not {kinds}; start a new run")
        return cls(**known)


@dataclass
class RunResult:
    """What :func:`run` wrote and found; the rows stay in the store until asked for."""

    run_id: str
    out: Path
    store_path: Path
    csv_path: Path
    notes: list[str]
    skipped_files: dict[str, int]
    #: The config the run was coded with (a resumed run's: as it was first given).
    config: RunConfig | None = None

    @functools.cached_property
    def rows(self) -> pd.DataFrame:
        """The run's rows as a DataFrame of the store's columns, read on first use: a
        10⁷-cell run's take ~20 GB, so ``medbench run`` never asks (it counts in SQL)."""
        store = ResultsStore.open_existing(self.store_path)
        try:
            return store.frame(self.run_id)
        finally:
            store.close()


def resolve_codecs(names: list[str] | None, context: CodecContext) -> tuple[list[Codec], list[str]]:
    """Codec instances for ``names`` (None = all available) and notes on those left out.

    ``context.trusted_byo`` reaches only codecs named in ``names``: with None (``--codecs
    all``) no codec may run code a model folder names (``byo`` is listed as skipped).
    """
    notes: list[str] = []
    if names is None:
        codecs = []
        context = replace(context, trusted_byo=None)  # `all` never runs a spec's code
        for name in codec_names():
            codec = get_codec(name, context)
            reason = codec.unavailable_reason()
            if reason:
                notes.append(f"skipped codec {name}: {reason}")
            else:
                codecs.append(codec)
        return codecs, notes
    codecs = []
    for name in unique_names(names, "--codecs"):
        codec = get_codec(name, context)  # unknown names raise UnknownNameError
        reason = codec.unavailable_reason()
        if reason:
            raise MedbenchError(f"codec {name} cannot run here: {reason}")
        codecs.append(codec)
    return codecs, notes


@dataclass
class RunPlan:
    """What a run will code, decided before anything is coded or recorded."""

    config: RunConfig
    codecs: list[Codec]
    datasets: dict[str, Dataset]
    units: list[WorkUnit]
    #: ``(codec, setting)`` → rank of the setting in its codec (low to high rate).
    ranks: dict[tuple[str, str], int]
    #: ``(dataset, image_id)`` of the images the visual comparison shows.
    visual_images: frozenset[tuple[str, str]]
    notes: list[str] = field(default_factory=list)
    skipped_files: dict[str, int] = field(default_factory=dict)


#: Images per dataset whose reconstructions the report's visual comparison shows.
VISUAL_IMAGES = 2


def run(
    config: RunConfig,
    out: Path,
    resume: bool = False,
    progress: Callable[[int], Any] | None = None,
    echo: Callable[[str], Any] = log.info,
    prepare_learned: Callable[..., list[str]] | None = None,
    given: Collection[str] | None = None,
    check_plan: Callable[[RunPlan, str | None], Any] | None = None,
) -> RunResult:
    """Run (or resume) a benchmark into the results folder ``out`` and return its rows.

    Parameters
    ----------
    config
        What to run (codecs, datasets, protocol, split...) and where to code it.
    out
        Results folder: ``results.sqlite``, ``results.csv``, ``manifests/``.
    resume
        Continue the latest run in ``out`` with its original arguments (the execution
        fields of ``config``, such as ``workers``, still apply).
    progress
        ``progress(total)`` may return a tqdm-like object, updated once per cell.
    echo
        Where one-line messages for the user go.
    prepare_learned
        Called before planning as ``prepare_learned(codecs, datasets, context=...,
        data_root=..., protocol=..., size=..., bit_depth=..., train_missing=..., echo=...,
        progress=...)``; returns notes on learned models a dataset lacks, or trains them
        (the CLI passes :func:`medbench.training.missing.prepare_learned`).
    given
        With ``resume``: the fields of ``config`` its user gave (the command line's
        options). A field that defines the run and differs from the earlier run's is
        refused; one of :data:`~medbench.benchmark.resume.RESUME_MAY_CHANGE` applies to
        this run; every other field is the earlier run's. None (the default): only the
        execution fields of ``config`` apply.
    check_plan
        Called as ``check_plan(plan, run_id)`` (``run_id``: the resumed run, else None)
        once the codecs and datasets are opened, before anything is written or coded
        (the CLI checks the folders it will write into).

    Returns
    -------
    RunResult
        The run id, its rows (a DataFrame of the store's columns), the CSV path, notes
        and the skipped-file counts per dataset.
    """
    out = Path(out)
    if not resume:
        _check_out(out)
    if resume and not (out / STORE_NAME).is_file():
        raise MedbenchError(f"--resume found no earlier run in {out}; run without --resume")
    store = ResultsStore.open_existing(
        out, readonly=False, fix="--resume cannot continue a run in it; choose another --out",
        echo=echo) if resume else None
    try:
        run_id = chosen = None
        if store is not None:  # --resume: the earlier run's arguments and images
            config, run_id = _resolve_resume(store, config, echo, given)
            chosen = {(d, i) for d, i, _, _ in store.run_images(run_id)} or None
        # Everything is checked (codecs, protocol, datasets) before the store is created,
        # so a mistyped argument leaves no file behind.

        def check(plan: RunPlan) -> None:  # before any manifest is written into out
            check_inside_datasets(out, plan, "--out")
            if check_plan is not None:
                check_plan(plan, run_id)

        plan = plan_run(config, out, echo=echo, prepare_learned=prepare_learned,
                        progress=progress is not None, chosen=chosen, check=check)
        if store is None and not plan.units:  # an empty run would look like a result
            raise MedbenchError(
                f"the {config.split} split of {', '.join(plan.datasets)} holds no image to "
                "code (see the lines above); choose another --split (all: every image), "
                "or add images")
        if store is None:
            store = _new_store(out, echo)
        run_id = execute(plan, store, run_id, progress=progress, echo=echo)
        _count_unreadable(store, run_id, plan.skipped_files, plan.notes)
        csv_path = store.export_csv(run_id, out / "results.csv")
    finally:
        if store is not None:
            store.close()
    return RunResult(run_id, out, out / STORE_NAME, csv_path, plan.notes,
                     plan.skipped_files, plan.config)


def _check_out(out: Path) -> None:
    """Refuse, before any work, an ``--out`` that cannot hold results: a file where the
    folder should be, a folder that cannot be written, or a damaged store in it."""
    problem = write_problem(out)
    if (out / STORE_NAME).exists() and not (out / STORE_NAME).is_file():
        problem = f"{out / STORE_NAME} is a folder, not a results store"
    if problem is not None:
        raise StoreWriteError(f"cannot write the results store {out / STORE_NAME} ({problem}); "
                              "choose a writable --out")
    if (out / STORE_NAME).is_file():  # a damaged store fails here, in one line
        ResultsStore.open_existing(out, fix="choose another --out").close()


def check_inside_datasets(out: Path, plan: RunPlan, option: str,
                          written: Collection[Path] = ()) -> None:
    """Refuse an output folder inside the folder of a dataset the plan reads.

    The next listing of that dataset would count what is written there (report figures,
    DICOM files, exported PNGs) as its own images. ``written``: sub-folders of ``out`` the
    command writes into, checked the same way (``--write-dicom DATA_ROOT`` writes
    ``DATA_ROOT/jsrt/...``).
    """
    roots = {}
    for spec, dataset in plan.datasets.items():
        try:
            root = dataset.root()
        except MedbenchError:  # not found: its listing says so, in its own words
            continue
        if root is not None:
            roots[spec] = root
    check_outside(out, roots, option, written)


def _new_store(out: Path, echo: Callable[[str], Any]) -> ResultsStore:
    """The store a new run writes to; says so when ``out`` already holds runs."""
    existed = (out / STORE_NAME).is_file()
    store = ResultsStore(out / STORE_NAME, echo=echo)
    if existed and store.runs():
        earlier, status = store.runs()[-1]
        echo(f"{out} already holds run {earlier} ({status}): continue it with --resume, "
             "or this run is added beside it")
    return store


def _resolve_resume(store: ResultsStore, config: RunConfig, echo: Callable[[str], Any],
                    given: Collection[str] | None = None) -> tuple[RunConfig, str]:
    """The config of the latest run in ``store`` and its id: its stored fields, with the
    changes ``given`` may make (:func:`medbench.benchmark.resume.resumed_config`)."""
    run_id = store.latest_run()
    if run_id is None:
        raise MedbenchError(f"--resume found no earlier run in {store.path.parent}; "
                            "run without --resume")
    stored = RunConfig.from_dict(store.run_info(run_id)["arguments"],
                                 where=f"run {run_id} in {store.path}")
    resumed, changed = resumed_config(stored, config, given, run_id)
    now = describe_changes(stored, resumed, changed)
    echo(f"resuming run {run_id} with its original arguments" + (f", but {now}" if now else ""))
    return resumed, run_id


def plan_run(config: RunConfig, out: Path, *, echo: Callable[[str], Any] = log.info,
             prepare_learned: Callable[..., list[str]] | None = None,
             progress: bool = False,
             chosen: Collection[tuple[str, str]] | None = None,
             check: Callable[[RunPlan], Any] | None = None) -> RunPlan:
    """Codecs, datasets, records and work units of a run; opens every dataset first, so a
    wrong ``--data-root`` fails before anything is coded.

    ``chosen``: the ``(dataset, image_id)`` an earlier run chose (``--resume``); then
    exactly those of them still present are planned, whatever the split and limit now
    select. ``check(plan)`` is called once codecs and datasets are opened, before any
    image is listed or manifest written (its units are still empty).
    """
    config.protocol_obj()  # a bad --protocol/--size/--bit-depth fails here
    if config.target:
        parse_targets(config.target)  # a bad --target fails before anything is opened
    parse_metrics(config.metrics)  # so do a bad --metrics and --display
    if config.display is not None and config.display not in DISPLAY_CHOICES:
        raise MedbenchError(f"--display {config.display!r} is unknown; use "
                            f"{'|'.join(DISPLAY_CHOICES)}")
    if config.repeats is not None and not 0 <= config.repeats <= MAX_REPEATS:
        raise MedbenchError(f"--repeats must be 0..{MAX_REPEATS}, got {config.repeats}")
    learned_batch(config.learned_batch, [])  # a bad --learned-batch fails here
    spec = config.observer_spec()  # a bad --observer/--nodule-* fails here
    context = CodecContext(models_dir=Path(config.models_dir), device=config.device,
                           milestones=config.milestones, trusted_byo=config.trusted_byo())
    if config.train_missing and prepare_learned is None:
        raise MedbenchError("train_missing needs run(prepare_learned=...), see "
                            "medbench.training.missing.prepare_learned")
    notes: list[str] = []
    if prepare_learned is not None:  # learned codecs: train missing models, or say how
        notes += prepare_learned(
            config.codecs, config.datasets, context=context, data_root=config.data_root,
            protocol=config.protocol, size=config.size, bit_depth=config.bit_depth,
            train_missing=config.train_missing, echo=echo, progress=progress,
        )
    codecs, codec_notes = resolve_codecs(config.codecs, context)
    for note in codec_notes:  # said now, before the wait for coding, not after it
        echo(f"note: {note}")
    targets = parse_targets(config.target) if config.target else []
    # Target cells rank after the codec's own settings, in the order given.
    ranks = {(codec.name, setting): rank
             for codec in codecs
             for rank, setting in enumerate([*codec.settings(), *(t.setting for t in targets)])}
    if not ranks:
        raise MedbenchError("no codec can run; see `medbench codecs` for what is missing")
    echo(f"codecs: {', '.join(codec.name for codec in codecs)} ({len(ranks)} settings)")
    if spec is not None:
        echo(f"observer: nodules of {', '.join(f'{d:g}' for d in spec.sizes_mm)} mm x "
             f"contrasts {', '.join(f'{c:g}' for c in spec.contrasts)} (of the peak), "
             f"{spec.per_condition} sites each per image (seed {spec.seed}); every cell also "
             "codes each image with nodules")
    plan = RunPlan(config, codecs, {}, [], ranks, frozenset(), notes)
    root = Path(config.data_root) if config.data_root else None
    specs = unique_names(config.datasets, "--datasets")
    # Every dataset is opened (a wrong --data-root fails) before any manifest is written.
    plan.datasets = {spec: get_dataset(spec, root) for spec in specs}
    _apply_grouping(config, plan.datasets)
    if check is not None:
        check(plan)
    visual: set[tuple[str, str]] = set()
    for spec in specs:
        dataset = plan.datasets[spec]
        where = dataset.root()
        echo(f"{spec}: listing images" + (f" in {where}" if where else ""))
        records = _dataset_records(config, spec, dataset, out, plan, chosen)
        echo(f"{spec}: {_chosen_text(config, dataset, records, chosen is not None)}")
        cells = tuple(ranks)
        plan.units += [WorkUnit(spec, record, cells) for record in records]
        visual |= {(spec, image_id) for image_id in visual_choice(records)}
    plan.visual_images = frozenset(visual)
    for line in seen_warnings(codecs, plan.units):  # said before the wait for coding
        echo(f"warning: {line}")
        plan.notes.append(line)
    return plan


def _apply_grouping(config: RunConfig, datasets: dict[str, Dataset]) -> None:
    """``--groups``/``--group-by`` on the run's ``folder:`` datasets (refused with none)."""
    if config.groups and config.group_by:
        raise MedbenchError("give either --groups or --group-by, not both")
    if not (config.groups or config.group_by):
        return
    grouping = read_groups(Path(config.groups)) if config.groups else group_by(config.group_by)
    folders = [d for spec, d in datasets.items() if spec.partition(":")[0] == "folder"]
    if not folders:
        raise MedbenchError(f"{grouping.source} groups the images of folder: datasets, and "
                            f"this run has none; the other datasets know their groups")
    for dataset in folders:
        dataset.use_grouping(grouping)


def _chosen_text(config: RunConfig, dataset: Dataset, records: list[Record],
                 resumed: bool) -> str:
    """``test split: 18 of 100 images, 12 patients`` (what a run codes, in one line)."""
    total = len(dataset.records())
    groups = len({record.group for record in records})
    what = "the images the run chose" if resumed else f"{config.split} split"
    text = f"{what}: {len(records)} of {total} images"
    if groups != len(records):
        text += f", {groups} {dataset.group_kind}s"
    if config.limit is not None and not resumed:
        text += f" (--limit {config.limit}: a sample of whole {dataset.group_kind}s, seed " \
                f"{config.seed})"
    return text


def _dataset_records(config: RunConfig, spec: str, dataset: Dataset, out: Path,
                     plan: RunPlan, chosen: Collection[tuple[str, str]] | None = None
                     ) -> list[Record]:
    """Choose one dataset's records through the split manifest kept in ``out`` (or,
    resuming, the records of ``chosen``)."""
    # Splits kept in OUT/manifests/ and reused by later runs (and by `medbench train`).
    if chosen is None:
        records = choose_with_manifest(dataset, spec, (config.split,), config.limit, out,
                                       config.seed)[config.split]
    else:  # the earlier run's images, even where files were added since
        records = choose_with_manifest(dataset, spec, ("all",), None, out,
                                       keep=lambda r: (spec, r.image_id) in chosen)["all"]
    plan.skipped_files[spec] = len(dataset.skipped)
    plan.notes += [f"skipped file in {spec}: {item.source}: {item.reason}"
                   for item in dataset.skipped]
    return records


def visual_choice(records: list[Record], n: int = VISUAL_IMAGES) -> list[str]:
    """Image ids the visual comparison shows: different body parts first, then by id."""
    ordered = sorted(records, key=lambda r: r.image_id)
    chosen: list[str] = []
    parts: set[Any] = set()
    for record in ordered:
        part = record.meta.get("body_part")
        if part not in parts:
            chosen.append(record.image_id)
            parts.add(part)
    chosen += [r.image_id for r in ordered if r.image_id not in chosen]
    return chosen[:n]


def execute(plan: RunPlan, store: ResultsStore, run_id: str | None = None, *,
            progress: Callable[[int], Any] | None = None,
            echo: Callable[[str], Any] = log.info) -> str:
    """Code the plan's cells not yet in the store and write each row as it arrives.

    Returns the run id (a new one unless ``run_id`` continues an earlier run). The run is
    marked ``finished``, or ``interrupted`` when anything (Ctrl-C included) stops it.
    """
    config = plan.config
    if run_id is not None:  # resuming: settle what changed since the run last stopped
        _check_models_unchanged(plan, store, run_id)
        _recode_changed_images(plan, store, run_id, echo)
        _charge_crashed_cells(plan, store, run_id, echo)
        _mark_missing_images(plan, store, run_id, echo)
    units = (_remaining(plan.units, store, run_id) if run_id is not None
             else [unit for unit in plan.units if unit.cells])
    # The executor starts before the run is recorded, so a wrong --scheduler leaves no trace.
    workers = config.workers
    if config.scheduler is None and units:  # no idle processes for tiny runs
        workers = min(workers or cpu_count(), len(units))
    openjpeg = _openjpeg.pin()  # before any worker starts: one OpenJPEG for the whole run
    executor = make_executor(config.executor, workers, config.scheduler)
    if run_id is None:
        run_id = store.new_run(config.to_dict(), environment.describe())
        store.set_run_images(run_id, [_image_entry(unit) for unit in plan.units])
    cache_dir = None
    if config.use_cache:
        cache_dir = str(Path(config.cache_dir) if config.cache_dir else default_cache_dir())
    batch = learned_batch(config.learned_batch, plan.codecs)
    job = Job(config.data_root, config.protocol_obj(), config.repeats, config.models_dir,
              config.device, cache_dir, run_id, plan.ranks, plan.visual_images,
              masks=config.masks, milestones=config.milestones, learned_batch=batch,
              openjpeg=openjpeg, trusted_byo=config.trusted_byo(),
              metrics=parse_metrics(config.metrics), display=config.display,
              observer=config.observer_spec(), keep_pixels=config.keep_pixels)
    if units:
        images = len(units)
        batched = f", learned cells in batches of up to {batch}" if batch > 1 else ""
        echo(f"coding {sum(len(u.cells) for u in units)} cells ({images} image"
             f"{'s' if images != 1 else ''}) on {executor.describe()}{batched}")
    by_name = {codec.name: codec for codec in plan.codecs}
    bar = progress(sum(len(unit.cells) for unit in units)) if progress else None

    writer = _Writer(store)

    def before_cell(units: Sequence[WorkUnit], codec: str, setting: str) -> None:
        writer.flush()  # in-process: the rows before a cell that may crash are committed
        store.mark_pending(run_id, [(unit.dataset, unit.record.image_id) for unit in units],
                           codec, setting)

    try:
        with executor:
            for row in executor.rows(job, units, plan.datasets, by_name, before_cell):
                writer.add(row)
                if bar is not None:
                    bar.update(1)
                    if row.status == "error":
                        bar.set_postfix_str(f"last error: {row.codec} {row.setting}")
        writer.flush()
        if job.observer is not None:
            _summarize_observer(store, run_id, job.observer, echo)
        store.set_run_status(run_id, "finished")
    except BaseException:
        try:
            writer.flush()  # what finished is kept
        except StoreWriteError:  # the disk is full: those cells are coded again on resume
            log.warning("could not write the last rows of run %s to %s", run_id, store.path)
        try:
            store.set_run_status(run_id, "interrupted")
        except StoreWriteError:  # the disk is full: resume finds the run anyway
            log.warning("could not mark run %s interrupted in %s", run_id, store.path)
        raise
    finally:
        if bar is not None:
            bar.close()
    return run_id


def _summarize_observer(store: ResultsStore, run_id: str, spec: ObserverSpec,
                        echo: Callable[[str], Any]) -> None:
    """Fit the observers on the run's sites and store the ``observer`` table."""
    echo("observer: fitting the CHO and bootstrapping d' over patients")
    table = summarize_observer(store.observer_sites(run_id), store.frame(run_id), spec.seed,
                               run_id)
    store.write_observer(run_id, table)
    echo(f"observer: {len(table)} rows in the store's observer table")


def _image_entry(unit: WorkUnit) -> tuple[str, str, str, str]:
    record = unit.record
    return (unit.dataset, record.image_id, record.source, record.meta.get("file_hash", ""))


def _check_models_unchanged(plan: RunPlan, store: ResultsStore, run_id: str) -> None:
    """Refuse to resume when a learned setting's model is no longer the one that coded
    the run's rows (retrained, or replaced): the run would mix two models' rows."""
    learned = {codec.name: codec for codec in plan.codecs if codec.kind == "learned"}
    for (name, setting), ids in sorted(store.model_ids(run_id).items()):
        codec = learned.get(name)
        if codec is None or setting not in codec.settings():
            continue
        now = json.loads(codec.setting_info(setting).get("model_info") or "{}").get("model_id")
        if now and set(ids) != {now}:
            raise MedbenchError(
                f"--resume: the model of {name} {setting} is not the one run {run_id} coded "
                f"with (model id {', '.join(sorted(ids))}, now {now}); its rows would mix "
                "two models: put the run's model back, or start a new run without --resume")


def _recode_changed_images(plan: RunPlan, store: ResultsStore, run_id: str,
                           echo: Callable[[str], Any]) -> None:
    """Delete the rows of images whose file changed since the run chose them, so all their
    cells are coded again from the new file (rows of two files never share an image id)."""
    recorded = {(d, i): h for d, i, _, h in store.run_images(run_id)}
    changed = []
    for unit in plan.units:
        old = recorded.get((unit.dataset, unit.record.image_id))
        new = unit.record.meta.get("file_hash", "")
        if old and new and old != new:
            gone = store.delete_image(run_id, unit.dataset, unit.record.image_id)
            echo(f"{unit.record.source} changed since run {run_id} coded it: deleted its "
                 f"{gone} row(s); all its cells are coded again")
            changed.append(_image_entry(unit))
    if changed:
        store.set_run_images(run_id, changed)


class _Writer:
    """The run's one writer: rows committed together when they arrive faster than
    :data:`WRITE_SECONDS` apart (many workers), each at once otherwise.

    A commit costs about what a thousand inserted rows do: committing every row, the
    writer of a 10⁷-cell run would spend about an hour committing and fall behind a
    cluster (``benchmarks/big_store.py write``). A process killed between commits loses
    only uncommitted rows, which ``--resume`` codes again.
    """

    def __init__(self, store: ResultsStore):
        self.store = store
        self.rows: list[ResultRow] = []
        self.last = time.monotonic()

    def add(self, row: ResultRow) -> None:
        self.rows.append(row)
        if len(self.rows) >= WRITE_BATCH or time.monotonic() - self.last >= WRITE_SECONDS:
            self.flush()

    def flush(self) -> None:
        rows, self.rows = self.rows, []  # written or failed, never tried twice
        self.last = time.monotonic()
        if rows:
            self.store.write_many(rows)


def _remaining(units: Sequence[WorkUnit], store: ResultsStore, run_id: str
               ) -> list[WorkUnit]:
    """The units of a resumed run with only the cells it has not finished: images with no
    row keep every cell, the others are looked up one by one in the store's key, so a
    10⁷-row store is never read whole."""
    counts = store.finished_by_image(run_id)
    out = []
    for unit in units:
        if counts.get((unit.dataset, unit.record.image_id)):
            done = store.finished_cells_of(run_id, unit.dataset, unit.record.image_id)
            unit = replace(unit, cells=tuple(c for c in unit.cells if c not in done))
        if unit.cells:
            out.append(unit)
    return out


def _charge_crashed_cells(plan: RunPlan, store: ResultsStore, run_id: str,
                          echo: Callable[[str], Any]) -> None:
    """Cells in flight when the process coding the run died become error rows: their
    codec probably killed it, and trying them again would kill this run too."""
    units = {(unit.dataset, unit.record.image_id): unit for unit in plan.units}
    kinds = {codec.name: codec.kind for codec in plan.codecs}
    for dataset, image_id, codec, setting, started in store.pending_cells(run_id):
        unit = units.get((dataset, image_id))
        if unit is None or (codec, setting) not in unit.cells:
            continue
        echo(f"{dataset} {image_id} {codec} {setting} was being coded when the process died: "
             "recorded as an error row, not tried again")
        for row in error_rows(replace(unit, cells=((codec, setting),)), run_id, plan.ranks,
                              f"the process died while coding this cell (started {started}); "
                              "its codec probably crashed it", kinds,
                              plan.config.protocol_obj()):
            store.write(row)


def _mark_missing_images(plan: RunPlan, store: ResultsStore, run_id: str,
                         echo: Callable[[str], Any]) -> None:
    """Error rows for the cells of images the run chose whose files are gone."""
    present = {(unit.dataset, unit.record.image_id) for unit in plan.units}
    for dataset, image_id, source, _ in store.run_images(run_id):
        if (dataset, image_id) in present or dataset not in plan.datasets:
            continue
        done = store.finished_cells_of(run_id, dataset, image_id)
        cells = tuple(cell for cell in plan.ranks if cell not in done)
        if not cells:
            continue
        echo(f"{source or image_id} of {dataset} is no longer present: its {len(cells)} "
             "remaining cell(s) are error rows")
        unit = WorkUnit(dataset, Record(image_id, image_id, source or ""), cells)
        for row in error_rows(unit, run_id, plan.ranks, "file no longer present",
                              protocol=plan.config.protocol_obj()):
            store.write(row)


def _count_unreadable(store: ResultsStore, run_id: str, skipped: dict[str, int],
                      notes: list[str]) -> None:
    """Add images that turned out unreadable while coding to the skipped-file counts."""
    for spec, images in store.unreadable_images(run_id).items():
        skipped[spec] = skipped.get(spec, 0) + images
        notes.append(f"{images} image(s) of {spec} could not be read (their rows are errors)")


__all__ = ["CALL_ONLY_FIELDS", "EXECUTION_FIELDS", "RunConfig", "RunPlan", "RunResult",
           "check_inside_datasets", "execute", "plan_run", "resolve_codecs", "run"]
