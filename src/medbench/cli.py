"""The ``medbench`` command line: run, codecs, datasets."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import click

from medbench import __version__
from medbench.benchmark.timing import MAX_REPEATS
from medbench.cli_args import StrictArgs
from medbench.errors import MedbenchError, UnknownNameError
from medbench.text import unique_names

USAGE_EXIT = 2


class MedbenchCommand(StrictArgs, click.Command):
    """A command that refuses an option given twice or an empty value (:mod:`.cli_args`)."""


class MedbenchGroup(StrictArgs, click.Group):
    """Prints user-caused errors as one line (``Error: ...``) instead of a traceback."""

    command_class = MedbenchCommand

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UnknownNameError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(USAGE_EXIT)
        except MedbenchError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)


def _split_names(value: str | None, option: str = "--codecs") -> list[str] | None:
    """Comma-separated names without repeats (first order kept); an empty name is refused
    (:func:`medbench.text.unique_names`)."""
    return None if value is None else unique_names(value.split(","), option)


class _Interrupts:
    """Turns SIGINT and SIGTERM into one :class:`KeyboardInterrupt`; signals that arrive
    while that interrupt is being handled are ignored, so the cleanup (workers ended, run
    marked ``interrupted``) is never cut short and prints no traceback."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __enter__(self) -> _Interrupts:
        self._old = {sig: signal.signal(sig, self._handle)
                     for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum: int, frame: object) -> None:
        if self.signal is not None:
            return
        self.signal = signum
        raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._old.items():
            # Interrupted: the process is about to exit. Ignore further signals, since a
            # Python handler would be reset to the default while the interpreter shuts
            # down, and a second Ctrl-C there would end it by SIGINT (with tracebacks).
            signal.signal(sig, signal.SIG_IGN if self.signal is not None else handler)

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or signal.SIGINT)


@click.group(cls=MedbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="medbench")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Benchmark image codecs on X-ray radiographs: rate, distortion and latency."""
    from medbench.benchmark.executors import quiet_library_messages

    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    quiet_library_messages()


# -- options shared by several commands ----------------------------------------------------
def data_root_option(from_env: bool = True):
    """``--data-root``; ``from_env`` defaults it to ``$MEDBENCH_DATA`` (the ``datasets``
    subcommands fall back to their group's option instead)."""
    return click.option(
        "--data-root", type=click.Path(file_okay=False, path_type=Path),
        default=(lambda: os.environ.get("MEDBENCH_DATA") or None) if from_env else None,
        help="Folder holding one sub-folder per dataset [env MEDBENCH_DATA].")


def protocol_options(command):
    """``--protocol``, ``--size`` and ``--bit-depth``: how images are prepared."""
    for option in reversed([
        click.option("--protocol", default="paper", show_default=True,
                     help="paper (256x256, 8-bit) or native (native size and bit depth)."),
        click.option("--size", default=None, help="Override the protocol's size: N or native."),
        click.option("--bit-depth", "bit_depth", default=None,
                     help="Override the protocol's bit depth: N or native."),
    ]):
        command = option(command)
    return command


def models_option(help_text: str):
    """``--models``: the folder of trained learned-codec models."""
    return click.option("--models", "models_dir",
                        type=click.Path(file_okay=False, path_type=Path),
                        default=Path("medbench-models"), show_default=True, help=help_text)


def device_option(help_text: str):
    """``--device``: where learned codecs run."""
    return click.option("--device", default="auto", show_default=True,
                        type=click.Choice(["auto", "cpu", "cuda"]), help=help_text)


def split_option(command):
    """``--split``: which split of each dataset."""
    return click.option("--split", default="test", show_default=True,
                        type=click.Choice(["test", "train", "val", "all"]),
                        help="Which split to use.")(command)


# -- run -------------------------------------------------------------------------------
def _learned_batch(value: str) -> str:
    """``--learned-batch``: ``auto`` or a whole number >= 1 (kept as text in the run)."""
    text = value.strip().lower()
    if text != "auto" and not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise click.BadParameter(f"{value!r} is neither a whole number >= 1 nor auto")
    return text if text == "auto" else str(int(text))


@main.command()
@click.option("--codecs", "codecs", default="all", show_default=True,
              help="Comma-separated codec names, or 'all' (every available codec).")
@click.option("--datasets", "datasets", default="sample", show_default=True,
              help="Comma-separated dataset names (e.g. sample, folder:PATH).")
@data_root_option()
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("medbench-results"), show_default=True, help="Results folder.")
@protocol_options
@split_option
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="At most N images per dataset: a random sample of whole patients/groups "
                   "(then images), the same for one --seed.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the --limit sample, and of --observer's nodule sites and "
                   "bootstrap (a whole number >= 0).")
@click.option("--repeats", type=click.IntRange(min=0, max=MAX_REPEATS), default=None,
              help="Timed encode+decode pairs per cell after one warm-up (median reported) "
                   "[default: automatic: the measured calls are timed, and repeated only "
                   "while a cell's calls stay under 0.2 s; column timed_calls].")
@models_option("Folder of trained learned-codec models.")
@device_option("Device for learned codecs.")
@click.option("--train-missing", is_flag=True,
              help="First train learned-codec models on each requested dataset that has "
                   "none (its train split; see `medbench train`).")
@click.option("--milestones", is_flag=True,
              help="Also code each learned model's milestone checkpoints (kept by `medbench "
                   "train --budget/--steps`) as settings <model>@<budget>; the report then "
                   "shows learned vs classical by training budget.")
@click.option("--trust-byo", "trust_byo", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Trust the bring-your-own spec folder DIR (MODELS/byo): import the "
                   "Python factories its specs name, when byo is named in --codecs. Never "
                   "stored with the run: give it again with --resume.")
@click.option("--resume", is_flag=True,
              help="Continue the latest run in --out (with its original arguments).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
@click.option("--executor", type=click.Choice(["local", "dask"]), default="local",
              show_default=True,
              help="local: worker processes on this machine; dask: a Dask cluster.")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Worker processes (local) or LocalCluster workers (dask without "
                   "--scheduler); default: this machine's cores; 1 = in-process.")
@click.option("--scheduler", default=None, metavar="tcp://HOST:PORT",
              help="Address of a running Dask scheduler (with --executor dask); workers "
                   "read images from the same --data-root path.")
@click.option("--learned-batch", "learned_batch", default="auto", show_default=True,
              metavar="N|auto", callback=lambda _c, _p, value: _learned_batch(value),
              help="Images of one size a learned codec codes in one call (same bytes as one "
                   "at a time); auto: 32 when it runs on a CUDA GPU, else 1. Rows state "
                   "batch_size; with N > 1 their encode_ms/decode_ms are amortized "
                   "(the batch's time / N).")
@click.option("--no-report/--report", "no_report", default=False,
              help="Do not write the report into OUT/report at the end (--report: do, "
                   "also when resuming a run started with --no-report).")
@click.option("--cache-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Cache of prepared images [default: $MEDBENCH_CACHE or ~/.cache/medbench].")
@click.option("--no-cache", is_flag=True, help="Read and prepare every image afresh.")
@click.option("--masks", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=None,
              help="Folder of binary region masks named like the images (<image_id>.png), "
                   "at native or prepared size: roi_* metrics inside them [default: the "
                   "datasets' own regions, JSRT nodules].")
@click.option("--groups", "groups", type=click.Path(dir_okay=False, path_type=Path),
              default=None, metavar="CSV",
              help="folder: datasets: a CSV 'image,patient' (image id or path, then its "
                   "group) saying which images share a patient; splits keep groups whole "
                   "and intervals resample them.")
@click.option("--group-by", "group_by", default=None, metavar="REGEX",
              help="folder: datasets: the group is the first capturing group of REGEX "
                   "searched in each image's path, e.g. '^(?P<patient>\\d{8})_'.")
@click.option("--target", "target", default=None, metavar="KIND=V[,V...]",
              help="Also code each image with each codec at the setting that hits a target: "
                   "ratio=10,30 (compression ratio vs native bits), bpp=0.25 or psnr=40. "
                   "Rows have setting target:ratio=10 and the knob used in column knob; "
                   "rates never exceed the target (see README).")
@click.option("--keep-pixels", "keep_pixels", is_flag=True,
              help="Keep each --target cell's whole decoded image and each original, at the "
                   "size coded, in OUT/pixels/ (16-bit PNGs, content-addressed) for "
                   "`medbench study make` (see README for the disk and time it costs).")
@click.option("--observer", "observer", type=click.Choice(["nodules"]), default=None,
              help="Also measure detectability: add simulated nodules in the lung fields, "
                   "code each image again with them, and score CHO and NPWE model "
                   "observers (d', AUC, d' coded/original; see README).")
@click.option("--nodule-sizes", "nodule_sizes", default=None, metavar="MM[,MM...]",
              help="--observer: nodule diameters in mm [default: 4,6,10].")
@click.option("--nodule-contrasts", "nodule_contrasts", default=None, metavar="C[,C...]",
              help="--observer: nodule peaks as fractions of the image's peak grey level "
                   "[default: 0.025,0.05,0.1].")
@click.option("--nodule-sites", "nodule_sites", type=click.IntRange(min=1), default=None,
              help="--observer: sites per size and contrast per image [default: 4].")
@click.option("--write-dicom", "write_dicom", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Also write each coded image whose bitstream is a DICOM transfer syntax "
                   "as an encapsulated DICOM into DIR (see `medbench dicom-export`).")
@click.option("--overwrite-dicom", is_flag=True,
              help="Let --write-dicom write into a folder that already holds files.")
@click.option("--metrics", "metrics", default="auto", show_default=True,
              metavar="auto|basic|all|vif,gmsd,haarpsi,fsim",
              help="Perceptual metrics besides PSNR/SSIM/MS-SSIM (columns vif, gmsd, "
                   "haarpsi, fsim and roi_*): auto computes all four on images of at most "
                   "256x256 pixels only (above, they about double the metrics' time), basic "
                   "none, all or a list at every size.")
@click.option("--display", "display", default=None,
              type=click.Choice(["lung", "mediastinum", "bone", "dicom"]),
              help="Also score the images through a VOI window, as 8-bit display values "
                   "(display_* columns): dicom = the source DICOM's window or VOI LUT; "
                   "lung/mediastinum/bone = fractions of the image's 1st-99th percentile "
                   "range (see README) [default: off].")
@click.pass_context
def run(ctx, codecs, datasets, data_root, out, protocol, size, bit_depth, split, limit, seed,
        repeats, models_dir, device, train_missing, milestones, resume, no_progress, executor,
        workers, scheduler, learned_batch, no_report, cache_dir, no_cache, masks, groups,
        group_by, target, keep_pixels, write_dicom, overwrite_dicom, trust_byo, metrics,
        display, observer, nodule_sizes, nodule_contrasts, nodule_sites) -> None:
    """Code every image of the chosen datasets with every codec and setting."""
    from medbench.codecs import registry as codec_registry
    from medbench.datasets import registry as dataset_registry

    # Names first, before the heavy imports below: a typo fails in a fraction of a second.
    codec_list = None if codecs.strip().lower() == "all" else _split_names(codecs)
    dataset_list = _split_names(datasets, "--datasets") or ["sample"]
    codec_registry.check_names(codec_list or [])
    dataset_registry.check_names(dataset_list)
    given = _given_fields(ctx)
    _check_combinations(given, resume, limit, write_dicom, no_cache, scheduler, observer)
    if keep_pixels and target is None and not resume:
        raise click.UsageError("--keep-pixels keeps the whole decoded images of --target "
                               "cells, and there are none; add --target ratio=10,20,30 (the "
                               "ratios a reader study shows)")
    if observer is None and not resume:  # said by _check_combinations; the run is without
        nodule_sizes = nodule_contrasts = nodule_sites = None
    click.echo("medbench: loading codecs and datasets…", err=True)

    from medbench.benchmark.metrics import parse_metrics
    from medbench.benchmark.runner import RunConfig
    from medbench.benchmark.runner import run as run_benchmark
    from medbench.benchmark.store import ResultsStore
    from medbench.reports.summary import format_table, run_totals, summarize_run
    from medbench.training.missing import prepare_learned

    config = RunConfig(
        codecs=codec_list,
        datasets=dataset_list,
        data_root=str(data_root) if data_root else None,
        protocol=protocol,
        size=size,
        bit_depth=bit_depth,
        split=split,
        limit=limit,
        seed=seed,
        repeats=repeats,
        models_dir=str(models_dir),
        device=device,
        train_missing=train_missing,
        milestones=milestones,
        executor=executor,
        workers=workers,
        scheduler=scheduler,
        learned_batch=learned_batch,
        cache_dir=str(cache_dir) if cache_dir else None,
        use_cache=not no_cache,
        masks=str(masks.resolve()) if masks else None,
        target=target,
        keep_pixels=keep_pixels,
        groups=str(groups.resolve()) if groups else None,
        group_by=group_by,
        trust_byo=str(trust_byo.resolve()) if trust_byo else None,
        report=not no_report,
        write_dicom=str(write_dicom.resolve()) if write_dicom else None,
        overwrite_dicom=overwrite_dicom,
        metrics=parse_metrics(metrics),  # canonical, so --resume compares meanings
        display=display,
        observer=observer,
        nodule_sizes=nodule_sizes,
        nodule_contrasts=nodule_contrasts,
        nodule_sites=nodule_sites,
    )

    def progress(total: int):
        return _CellBar(total)

    interrupts = _Interrupts()
    try:
        with interrupts:  # Ctrl-C and SIGTERM end the run the same way
            result = run_benchmark(config, out, resume=resume,
                                   progress=None if no_progress else progress,
                                   echo=lambda m: click.echo(m, err=True),
                                   prepare_learned=prepare_learned,
                                   given=given,
                                   check_plan=lambda plan, run_id: _check_run_plan(
                                       plan, run_id, given, out))
    except KeyboardInterrupt:
        from medbench.benchmark.store import STORE_NAME

        if not (Path(out) / STORE_NAME).exists():  # stopped before the store was made
            click.echo(f"\nInterrupted before any cell was coded; no run was recorded in "
                       f"{out}: run the same command again (without --resume).", err=True)
        else:
            click.echo(f"\nInterrupted. Finished cells are saved in {out}; continue with "
                       f"`medbench run --out {out} --resume`.", err=True)
        sys.exit(interrupts.exit_code)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    # Computed in the store: a 10⁷-cell run's rows do not fit in memory.
    store = ResultsStore.open_existing(result.store_path)
    try:
        table, left_out = summarize_run(store, result.run_id)  # images a model trained on: out
        rows, errors, first = store.compute(run_totals, result.run_id)
    finally:
        store.close()
    for dataset, note in left_out.items():
        click.echo(f"note: {dataset}: {note}", err=True)
    click.echo(format_table(table))
    click.echo("")
    click.echo(f"run {result.run_id}: {rows} rows, {errors} errors")
    if first is not None:
        codec, setting, image_id, error = first
        click.echo(f"first error: {codec} {setting} {image_id}: {error}")
    skipped = {spec: n for spec, n in result.skipped_files.items() if n}
    if skipped:
        click.echo("skipped files: " + ", ".join(f"{spec} {n}" for spec, n in skipped.items())
                   + " (reasons in the notes above)")
    click.echo(f"results: {result.csv_path}")
    click.echo(f"store:   {result.store_path}")
    done = result.config or config  # a resumed run's: what it was started with
    step = "the report"
    try:
        with interrupts:  # Ctrl-C here: every row is saved; say how to finish the rest
            if done.report:
                click.echo("writing the report…", err=True)
                _write_report(result.out, result.out / "report", result.run_id)
            if done.write_dicom is not None:
                step = "the DICOM export"
                _export_dicom(result.out, Path(done.write_dicom), result.run_id, None, None,
                              done.overwrite_dicom, option="--write-dicom",
                              overwrite_option="--overwrite-dicom")
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted while writing {step}. Every cell of run {result.run_id} "
                   f"is saved in {out}; `medbench run --out {out} --resume` writes {step} "
                   "again.", err=True)
        sys.exit(interrupts.exit_code)


#: RunConfig fields of `run` options whose parameter has another name.
_FIELD_OF = {"no_report": "report", "no_cache": "use_cache"}


def _given_fields(ctx: click.Context) -> set[str]:
    """The RunConfig fields whose option this command line (or its environment) gave."""
    given = set()
    for name in ctx.params:
        source = ctx.get_parameter_source(name)
        if source in (click.core.ParameterSource.COMMANDLINE,
                      click.core.ParameterSource.ENVIRONMENT):
            given.add(_FIELD_OF.get(name, name))
    return given


def _check_combinations(given: set[str], resume: bool, limit, write_dicom, no_cache,
                        scheduler, observer=None) -> None:
    """Refuse options that contradict each other; say (never ignore in silence) those that
    would do nothing with the others given, and go on: the run is what it would be
    without them."""
    if "cache_dir" in given and no_cache:
        raise click.UsageError("--cache-dir goes unused with --no-cache; drop one of them")
    unused = []
    if "overwrite_dicom" in given and write_dicom is None and not resume:
        unused.append("--overwrite-dicom only applies with --write-dicom DIR; it does "
                      "nothing here")
    if "seed" in given and limit is None and observer is None and not resume:
        unused.append("--seed only chooses the --limit sample (and --observer's sites), and "
                      "without --limit every image of the split is coded; it does nothing "
                      "here")
    loose = [f"--{name.replace('_', '-')}" for name in ("nodule_sizes", "nodule_contrasts",
                                                        "nodule_sites") if name in given]
    if loose and observer is None and not resume:
        unused.append(f"{' and '.join(loose)} set up --observer nodules, which is not given; "
                      "it does nothing here")
    if "workers" in given and scheduler:
        unused.append("--workers starts that many local Dask workers, but with --scheduler "
                      "the cluster's own workers code; it does nothing here")
    for line in unused:
        click.echo(f"note: {line}", err=True)


def _check_run_plan(plan, run_id: str | None, given: set[str], out: Path) -> None:
    """Before a run codes anything: options for learned codecs have one to act on; the
    ``--write-dicom`` folder can take this run's files, lies outside the datasets'
    folders and apart from ``--out``, and some codec writes DICOM."""
    config = plan.config
    learned = [codec.name for codec in plan.codecs if codec.kind == "learned"]
    for flag, wanted in (("--milestones", config.milestones),
                         ("--train-missing", config.train_missing),
                         ("--learned-batch", "learned_batch" in given),
                         ("--device", "device" in given)):
        if wanted and not learned:  # harmless, but never ignored in silence
            click.echo(f"note: {flag} acts on learned codecs, and none of the codecs "
                       f"{', '.join(codec.name for codec in plan.codecs)} is one; it does "
                       f"nothing here", err=True)
    if config.write_dicom is not None:
        from medbench.writeback import check_run_export

        check_run_export(plan, Path(config.write_dicom), config.overwrite_dicom, out, run_id)


class _CellBar:
    """The coding progress bar: no time estimate until a few cells are done, since the
    first cells pay for loading models and images and would promise hours."""

    #: Cells (and seconds) before the bar dares an estimate.
    SETTLE_CELLS, SETTLE_S = 5, 3.0
    QUIET = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def __init__(self, total: int):
        import time

        from tqdm import tqdm

        self._clock = time.monotonic
        self._start = self._clock()
        self._bar = tqdm(total=total, unit="cell", desc="coding", file=sys.stderr,
                         dynamic_ncols=True, bar_format=self.QUIET)
        self._settled = False

    def update(self, n: int = 1) -> None:
        if not self._settled and self._bar.n + n >= self.SETTLE_CELLS \
                and self._clock() - self._start >= self.SETTLE_S:
            self._bar.bar_format = None  # tqdm's default: rate and remaining time
            self._settled = True
        self._bar.update(n)

    def set_postfix_str(self, text: str) -> None:
        self._bar.set_postfix_str(text)

    def close(self) -> None:
        self._bar.close()


def _export_dicom(results: Path, out: Path, run_id: str | None, codec: str | None,
                  setting: str | None, overwrite: bool, option: str = "--out",
                  overwrite_option: str = "--overwrite") -> None:
    from medbench.writeback import export_run

    exported = export_run(results, out, run_id=run_id, codec=codec, setting=setting,
                          overwrite=overwrite, echo=lambda m: click.echo(m, err=True),
                          option=option, overwrite_option=overwrite_option)
    for note in exported.skipped:
        click.echo(f"skipped: {note}", err=True)
    click.echo(f"dicom:   {len(exported.written)} coded and {len(exported.references)} "
               f"reference file(s) in {out} (list: {exported.index})")


@main.command("dicom-export")
@click.argument("results_dir", type=click.Path(exists=True, path_type=Path))
@click.option("--codec", required=True, help="Codec whose coded images to write.")
@click.option("--setting", default=None, help="Only this setting [default: every setting].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the DICOM files (new or empty unless --overwrite).")
@click.option("--run", "run_id", default=None, help="Run id [default: the latest run].")
@click.option("--overwrite", is_flag=True, help="Write into a folder that holds files.")
def dicom_export_cmd(results_dir: Path, codec: str, setting: str | None, out: Path,
                     run_id: str | None, overwrite: bool) -> None:
    """Write a finished run's coded images as DICOM files, re-coded from the source.

    The re-coded bitstream is written only when its SHA-256 equals the row's
    stream_sha256, so each file holds exactly what the run measured.
    """
    _export_dicom(results_dir, out, run_id, codec, setting, overwrite)


def _write_report(results: Path, out: Path, run_id: str) -> None:
    """The end-of-run report; a failure is a warning, since the results are already saved."""
    from medbench.reports.build import build_report

    try:
        report = build_report(results, out, run_id)
    except Exception as exc:  # the run's rows are safe in the store; say how to retry
        click.echo(f"warning: the report could not be written ({type(exc).__name__}: {exc}); "
                   f"retry with `medbench report {results}`", err=True)
        return
    click.echo(f"report:  {report.index}")


# -- report ------------------------------------------------------------------------------
@main.command("report")
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder [default: RESULTS_DIR/report].")
@click.option("--run", "run_id", default=None, help="Run id [default: the latest run].")
@click.option("--no-visual", is_flag=True,
              help="Skip the visual comparison (drawn from the pixels the run stored).")
def report_cmd(results_dir: Path, out: Path | None, run_id: str | None, no_visual: bool) -> None:
    """Write tables, RD curves, BD-rates and one HTML page for a run in RESULTS_DIR."""
    from medbench.reports.build import build_report

    folder = out if out is not None else Path(results_dir) / "report"
    _check_report_folder(results_dir, folder, run_id)
    try:
        report = build_report(results_dir, out, run_id, visual=not no_visual)
    except OSError as exc:  # the folder became unwritable, or the disk is full
        raise MedbenchError(f"cannot write the report into {folder} ({exc.strerror or exc}); "
                            "choose a writable --out with free space") from None
    for note in report.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(report.markdown["summary"])
    click.echo(report.markdown["bd-rate"])
    click.echo(f"report: {report.index}")


def _check_report_folder(results: Path, folder: Path, run_id: str | None) -> None:
    """Refuse a report folder that cannot be written, or that lies inside the folder of a
    dataset the run read (its figures would be listed as images)."""
    from medbench.benchmark.store import ResultsStore
    from medbench.datasets import get_dataset
    from medbench.folders import check_outside, check_writable

    store = ResultsStore.open_existing(results, check=False)  # build_report checks it
    try:
        run_id = run_id or store.latest_run()
        arguments = store.run_info(run_id)["arguments"] if run_id else {}
    finally:
        store.close()
    check_writable(folder, "--out")
    root = arguments.get("data_root")
    roots = {}
    for spec in arguments.get("datasets") or []:
        try:
            roots[spec] = get_dataset(str(spec), Path(root) if root else None).root()
        except (MedbenchError, TypeError, ValueError, OSError):
            continue  # a dataset that cannot be found here holds nothing to protect
    check_outside(folder, {k: v for k, v in roots.items() if v is not None}, "--out")


# -- compare -----------------------------------------------------------------------------
@main.command("compare")
@click.argument("baseline", type=click.Path(exists=True, path_type=Path))
@click.argument("new", type=click.Path(exists=True, path_type=Path))
@click.option("--psnr-tol", type=click.FloatRange(min=0), default=0.05, show_default=True,
              help="Largest allowed drop of a cell's mean PSNR, in dB.")
@click.option("--ms-ssim-tol", type=click.FloatRange(min=0), default=0.001, show_default=True,
              help="Largest allowed drop of a cell's mean MS-SSIM.")
@click.option("--bpp-tol", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="Largest allowed rise of a cell's mean bpp, in percent.")
@click.option("--allow-missing", is_flag=True,
              help="List cells and images found in only one of the two results, but do not "
                   "fail on them.")
@click.option("--strict", is_flag=True,
              help="Also fail when a cell's mean bpp drops by more than --bpp-tol (an "
                   "unexplained rate improvement; without --strict it is reported).")
def compare_cmd(baseline, new, psnr_tol, ms_ssim_tol, bpp_tol, allow_missing, strict) -> None:
    """Compare NEW results with BASELINE; exit 1 when a cell changed beyond what is allowed.

    BASELINE and NEW are results folders (their store's latest run) or results CSV files.
    Rows are matched image by image: the same images, and identical streams where both
    rows name the same codec_library. Prints, per dataset x codec x setting, the change in
    mean bpp, PSNR and MS-SSIM, checked against the tolerances.
    """
    from medbench.reports.compare import Tolerances, compare, format_comparison, open_results

    base_rows, base_label = open_results(baseline)
    new_rows, new_label = open_results(new)
    tolerances = Tolerances(psnr_tol, ms_ssim_tol, bpp_tol, allow_missing, strict)
    result = compare(base_rows, new_rows, tolerances)
    click.echo(f"baseline: {base_label}")
    click.echo(f"new:      {new_label}")
    click.echo(format_comparison(result))
    click.echo("")
    for note in result.notes:
        click.echo(f"note: {note}")
    if result.improvements:
        click.echo(f"{len(result.improvements)} rate improvement(s) beyond --bpp-tol "
                   "(they fail with --strict):")
        for line in result.improvements:
            click.echo(f"  {line}")
    if result.passed:
        click.echo(f"no regression ({len(result.table)} cells; streams identical where the "
                   f"library is the same; tolerances: PSNR -{psnr_tol:g} dB, "
                   f"MS-SSIM -{ms_ssim_tol:g}, bpp +{bpp_tol:g} %"
                   f"{f' and -{bpp_tol:g} % (--strict)' if strict else ''})")
        return
    click.echo(f"{len(result.regressions)} regression(s):", err=True)
    for line in result.regressions:
        click.echo(f"  {line}", err=True)
    sys.exit(1)


# -- train -------------------------------------------------------------------------------
class _TrainableChoice(click.Choice):
    """``--model`` choices read from the architecture registry when first needed (so the
    CLI starts without importing torch, and a new architecture module needs no edit here)."""

    def __init__(self) -> None:
        super().__init__([])

    @property
    def choices(self):  # type: ignore[override]
        from medbench.training.config import trainable

        return tuple(trainable())

    @choices.setter
    def choices(self, value) -> None:  # click's __init__ assigns the (empty) list
        pass


class _DefaultsOption(click.Option):
    """An option whose help ends with each architecture's default of ``attr``, read from
    the registry when help is shown."""

    def __init__(self, *args, attr: str, extra: str = "", **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._attr, self._extra, self._base = attr, extra, self.help or ""

    def get_help_record(self, ctx):
        from medbench.codecs.learned import archs

        defaults = ", ".join(f"{name} {getattr(spec, self._attr)}"
                             for name, spec in archs.registered().items())
        self.help = f"{self._base} [{defaults}{self._extra}]."
        return super().get_help_record(ctx)


@main.command("train")
@click.option("--model", "arch", required=True, type=_TrainableChoice(),
              help="Which learned codec to train a model (one setting) for; jpeg2000+pf "
                   "is a post-filter for JPEG 2000 at --ratio.")
@click.option("--dataset", required=True,
              help="Dataset to train on: its train split, with early stopping on its val "
                   "split (e.g. sample, jsrt, folder:PATH).")
@data_root_option()
@protocol_options
@click.option("--epochs", type=click.IntRange(min=1), default=None,
              help="Most epochs (training stops earlier when val loss stalls) [30; with "
                   "--budget/--steps: no epoch limit].")
@click.option("--budget", default=None, metavar="DURATION",
              help="Train for this much device time (90s, 20m, 1.5h) with a cosine "
                   "learning-rate decay; keeps milestone checkpoints at 1, 2, 4 … minutes.")
@click.option("--steps", type=click.IntRange(min=1), default=None,
              help="Train for this many optimisation steps (as --budget; milestones at "
                   "powers of two).")
@click.option("--init", "init", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="MODEL_DIR",
              help="Start from this trained model (same architecture and sizes) and "
                   "fine-tune it on --dataset; the new model records it as its parent.")
@click.option("--ratio", type=float, default=None,
              help="jpeg2000+pf only: the JPEG 2000 ratio (as its ratio=R setting) whose "
                   "decodes the filter learns to clean.")
@click.option("--half", is_flag=True,
              help="Store the weights as float16 (half the bytes, for shipping models), "
                   "validated as stored; on a finished float32 model: round and store it "
                   "again, without training (jpeg2000+pf filters are always float16).")
@click.option("--batch-size", type=click.IntRange(min=1), default=4, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=1e-3,
              show_default=True, help="Adam learning rate.")
@click.option("--objective", type=click.Choice(["mse", "rd"]), default="mse",
              show_default=True, help="mse: distortion only (the paper); rd: D + λ·R.")
@click.option("--lmbda", type=click.FloatRange(min=0, min_open=True), default=None,
              help="λ of --objective rd (D: MSE on [0,1], R: bpp); larger = lower rate.")
@click.option("--latent", type=click.IntRange(min=1), default=None, cls=_DefaultsOption,
              attr="latent", help="Latent channels (ae: latents per 16x16 block)")
@click.option("--width", type=click.IntRange(min=1), default=None, cls=_DefaultsOption,
              attr="width", extra=", jpeg2000+pf 16",
              help="Hidden units (ae) or feature channels (the others)")
@click.option("--patience", type=click.IntRange(min=1), default=5, show_default=True,
              help="Stop after this many epochs without a better val loss.")
@click.option("--crop", type=click.IntRange(min=1), default=256, show_default=True,
              help="Side of the random square training crops.")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Crops per training image per epoch (for small datasets).")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="At most N images per split (quick tries).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the --limit sample (as in `run`), initial weights and crops.")
@click.option("--name", default=None,
              help="Model (setting) name [<dataset>-l<latent>, plus -lam<λ> for rd].")
@device_option("auto: CUDA when present.")
@models_option("Folder of trained models (the model goes to MODELS/<model>/<name>).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bars.")
@click.pass_context
def train_cmd(ctx, arch, dataset, data_root, protocol, size, bit_depth, epochs, budget, steps, init,
              ratio, half, batch_size, lr, objective, lmbda, latent, width, patience, crop,
              repeat, limit, seed, name, device, models_dir, no_progress) -> None:
    """Train one model of a learned codec; re-running the same command resumes it (a
    jpeg2000+pf filter, minutes long, starts over)."""
    if (budget is not None or steps is not None) \
            and ctx.get_parameter_source("patience") == click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("--patience stops epoch-based training early; with --budget or "
                               "--steps the model trains to the end of its budget: drop "
                               "--patience")
    from medbench.training.config import POSTFILTER, TrainConfig, train_command
    from medbench.training.loop import train as train_model
    from medbench.training.postfilter import train_postfilter

    config = TrainConfig(
        arch=arch, dataset=dataset, data_root=str(data_root) if data_root else None,
        protocol=protocol, size=size, bit_depth=bit_depth, epochs=epochs,
        batch_size=batch_size, lr=lr, objective=objective, lmbda=lmbda, latent=latent,
        width=width, patience=patience, crop=crop, repeat=repeat, seed=seed, limit=limit,
        device=device,
        models_dir=str(models_dir), name=name,
        budget=budget, steps=steps, init=str(init) if init else None, ratio=ratio,
        half=half,
    )
    if arch == POSTFILTER:
        train_model = train_postfilter
    from medbench.folders import check_writable

    check_writable(models_dir, "--models")  # before minutes of training, not after
    try:
        result = train_model(config, progress=not no_progress, command=train_command(config),
                             echo=lambda m: click.echo(m, err=True))
    except KeyboardInterrupt:
        if arch == POSTFILTER:  # minutes of training: it starts over rather than resumes
            click.echo(f"\nInterrupted. Nothing was written to {config.folder}; run the "
                       f"same command again to train the filter from the start.", err=True)
        else:
            click.echo(f"\nInterrupted. Progress is saved in {config.folder}; run the "
                       f"same command again to resume.", err=True)
        sys.exit(130)
    click.echo(f"model: {result.checkpoint.folder} (setting {result.checkpoint.name} of "
               f"codec {arch}, id {result.checkpoint.model_id})")


# -- provenance --------------------------------------------------------------------------
@main.command("provenance")
@click.argument("model_dirs", nargs=-1, required=True,
                type=click.Path(exists=True, file_okay=False, path_type=Path))
@data_root_option()
@models_option("The --models folder the models were trained into (its manifests/ holds "
               "their split).")
@click.option("--overwrite", is_flag=True, help="Recompute a list a model already records.")
def provenance_cmd(model_dirs, data_root, models_dir, overwrite) -> None:
    """Record in trained models which images they trained on (content hashes).

    For models trained before medbench recorded them: their train and val images are
    chosen again from the split they trained on (their dataset, --limit and --seed,
    through MODELS/manifests/ when it is there) and hashed; the weights are untouched.
    A run then marks rows of those images seen_in_training.
    """
    from medbench.training.recover import recover

    manifests = Path(models_dir) if (Path(models_dir) / "manifests").is_dir() else None
    done = recover(list(model_dirs), data_root, manifests, overwrite,
                   echo=lambda m: click.echo(m, err=True))
    for folder in done.kept:
        click.echo(f"{folder}: already records its images (--overwrite to recompute)")
    for folder, reason in done.refused.items():
        click.echo(f"Error: {folder}: {reason}", err=True)
    click.echo(f"{len(done.written)} model(s) written, {len(done.kept)} kept, "
               f"{len(done.refused)} refused")
    if done.refused:
        sys.exit(1)


# -- codecs ------------------------------------------------------------------------------
@main.command("codecs")
@models_option("Folder of trained learned-codec models whose settings to list.")
def codecs_cmd(models_dir) -> None:
    """List the registered codecs, their bit depths and operating points."""
    from medbench.codecs import CodecContext, codec_names, get_codec, registry

    context = CodecContext(models_dir=Path(models_dir))
    for name in codec_names():
        info = get_codec(name, context).describe()
        status = f"unavailable: {info['unavailable']}" if info["unavailable"] else "available"
        click.echo(f"{name}  [{info['kind']}, {info['bit_depths']}-bit, {status}]")
        click.echo(f"    settings: {', '.join(info['settings']) or '(none)'}")
        if info["rate_knob"]:
            click.echo(f"    knob:     {info['rate_knob']}")
        for note in info["notes"]:
            click.echo(f"    note:     {note}")
    for name, reason in registry.broken.items():
        click.echo(f"{name}  [failed to load: {reason}]")


# -- datasets ------------------------------------------------------------------------------
@main.group("datasets", invoke_without_command=True, cls=MedbenchGroup)
@data_root_option()
@click.pass_context
def datasets_cmd(ctx: click.Context, data_root: Path | None) -> None:
    """List the registered datasets and whether each is found under --data-root."""
    ctx.obj = {"data_root": data_root}
    if ctx.invoked_subcommand is not None:
        return
    from medbench.datasets import dataset_names, get_dataset, registry

    for name in dataset_names():
        cls = registry.get(name)
        folder = cls.folder
        if name == "folder":
            status = "use as folder:PATH"
        elif folder is None:
            status = "built in"
        elif data_root is None:
            status = "needs --data-root"
        elif not (Path(data_root) / folder).is_dir():
            status = f"not found (no {Path(data_root) / folder})"
        else:
            try:
                dataset = get_dataset(name, Path(data_root))
                n = len(dataset.records())
                status = f"found, {n} images"
                if dataset.skipped:
                    status += f" ({len(dataset.skipped)} skipped)"
            except MedbenchError as exc:
                status = f"not found ({exc})"
        click.echo(f"{name:10s} {status:40s} {cls.description}")
    for name, reason in registry.broken.items():
        click.echo(f"{name:10s} failed to load: {reason}")


def _dataset_root(ctx: click.Context, data_root: Path | None) -> Path | None:
    """The subcommand's --data-root, else the group's (``medbench datasets --data-root``);
    two different ones are refused rather than one silently winning."""
    group_root = (ctx.obj or {}).get("data_root")
    if data_root is not None and group_root is not None \
            and Path(data_root).resolve() != Path(group_root).resolve():
        raise click.UsageError(
            f"--data-root was given twice ({group_root} to `datasets`, {data_root} to "
            f"`datasets {ctx.info_name}`); give it once")
    if data_root is not None:
        return Path(data_root)
    return Path(group_root) if group_root else None


_DATA_ROOT = data_root_option(from_env=False)


@datasets_cmd.command("show")
@click.argument("name")
@_DATA_ROOT
@click.pass_context
def datasets_show(ctx: click.Context, name: str, data_root: Path | None) -> None:
    """Counts per split, bit depths, sizes, body parts and skipped files of dataset NAME."""
    from medbench.datasets import get_dataset
    from medbench.datasets.inspect import format_summary, summarize_dataset

    dataset = get_dataset(name, _dataset_root(ctx, data_root))
    click.echo(format_summary(summarize_dataset(dataset, name)))


@datasets_cmd.command("export")
@click.argument("name")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder to write <image_id>.png files (and index.csv) into.")
@split_option
@protocol_options
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="At most N images: the sample `run --limit N --seed S` codes.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the --limit sample (as `run --seed`).")
@click.option("--manifest-dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, metavar="DIR",
              help="Splits from the manifest kept in DIR/manifests/ (a run's --out, a "
                   "training's --models), as that run chose them; read, never written.")
@click.option("--results", type=click.Path(file_okay=False, path_type=Path), default=None,
              metavar="DIR",
              help="Exactly the images of NAME that the run in results folder DIR coded "
                   "(its recorded images and manifest; its protocol unless given).")
@click.option("--run", "run_id", default=None,
              help="With --results: the run [default: the latest].")
@_DATA_ROOT
@click.pass_context
def datasets_export(ctx: click.Context, name: str, out: Path, split: str, protocol: str,
                    size: str | None, bit_depth: str | None, limit: int | None, seed: int,
                    manifest_dir: Path | None, results: Path | None, run_id: str | None,
                    data_root: Path | None) -> None:
    """Write dataset NAME's images as codecs receive them, as <image_id>.png in OUT."""
    from medbench.benchmark.choice import run_manifest, stored_choice
    from medbench.datasets import get_dataset
    from medbench.datasets.cache import PreparedCache
    from medbench.datasets.export import export_images
    from medbench.datasets.protocols import parse_protocol

    given = {key for key in ("split", "limit", "seed", "manifest_dir", "run_id", "protocol",
                             "size", "bit_depth")
             if ctx.get_parameter_source(key) is click.core.ParameterSource.COMMANDLINE}
    root = _dataset_root(ctx, data_root)
    if results is None:
        if "run_id" in given:
            raise MedbenchError("--run names a run of --results DIR; add --results")
        chosen = parse_protocol(protocol, size, bit_depth)
        dataset = get_dataset(name, root)
        _check_export_out(out, name, dataset)
        manifest = run_manifest(manifest_dir, name, dataset) if manifest_dir else None
        result = export_images(dataset, out, split, chosen, limit, PreparedCache(),
                               seed=seed, manifest=manifest)
        what = f"split {split}"
    else:
        clash = sorted(given & {"split", "limit", "seed", "manifest_dir"})
        if clash:
            raise MedbenchError(f"--results takes the split, limit, seed and manifest from "
                                f"the run; drop --{clash[0].replace('_', '-')}")
        choice = stored_choice(results, run_id)
        run_config = choice.config
        if not given & {"protocol", "size", "bit_depth"}:  # as the run prepared them
            protocol, size, bit_depth = (run_config.protocol, run_config.size,
                                         run_config.bit_depth)
        chosen = parse_protocol(protocol, size, bit_depth)
        if root is None and run_config.data_root:
            root = Path(run_config.data_root)
        dataset = get_dataset(name, root)
        _check_export_out(out, name, dataset)
        records, missing = choice.records(name, dataset)
        result = export_images(dataset, out, protocol=chosen, cache=PreparedCache(),
                               records=records)
        for image_id in missing:
            click.echo(f"note: run {choice.run_id} coded {image_id}, which {name} no longer "
                       f"holds", err=True)
        what = f"run {choice.run_id}"
    for item in dataset.skipped:
        click.echo(f"note: skipped file: {item.source}: {item.reason}", err=True)
    for item in result.failed:
        click.echo(f"note: could not read: {item.reason}", err=True)
    if result.replaced:
        click.echo(f"note: replaced the earlier export in {out} ({result.replaced} files)",
                   err=True)
    click.echo(f"wrote {len(result.written)} images ({chosen.name}, {what}) to {out}")
    click.echo(f"index: {result.index}")


def _check_export_out(out: Path, name: str, dataset) -> None:
    """``datasets export --out``: writable, and outside the dataset's own folder."""
    from medbench.folders import check_outside, check_writable

    check_writable(out, "--out")
    root = dataset.root()
    check_outside(out, {name: root} if root else {}, "--out")


# -- reader studies ------------------------------------------------------------------------
@main.group("study", cls=MedbenchGroup)
def study_group() -> None:
    """Reader studies: blinded reading kits from a run's kept pixels, and their analysis."""


@study_group.command("make")
@click.argument("results_dir", type=click.Path(path_type=Path))
@click.option("--codecs", "codecs", required=True, help="Comma-separated codecs of the run.")
@click.option("--target", "target", required=True, metavar="ratio=R[,R...]",
              help="Compression ratios the run coded with --target (e.g. ratio=10,20,30).")
@click.option("--images", "images", type=click.IntRange(min=1), required=True,
              help="Images in the study (each shown once at every codec and ratio).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="New (or empty) kit folder.")
@click.option("--protocol", type=click.Choice(["2afc", "revealed", "rating"]),
              default="2afc", show_default=True,
              help="2afc: original and coded side by side, which is the original; revealed: "
                   "the original above, which of the two below is coded; rating: one image "
                   "on a 5-point diagnostic-acceptability scale.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the images chosen, trial order, sides and file names.")
@click.option("--catch", "catch", type=click.FloatRange(0, 0.9), default=0.1,
              show_default=True,
              help="Share of catch trials (the original against itself; 2afc, revealed).")
@click.option("--run", "run_id", default=None, help="Run id [default: the latest run].")
def study_make(results_dir: Path, codecs: str, target: str, images: int, out: Path,
               protocol: str, seed: int, catch: float, run_id: str | None) -> None:
    """Write a blinded reading kit (DIR/index.html, images, DIR/key.json) from RESULTS_DIR."""
    from medbench.study.kit import make_kit

    names = _split_names(codecs, "--codecs")
    if not names:
        raise click.UsageError("--codecs names no codec; write e.g. --codecs jpeg2000,jpegxl")
    kit = make_kit(results_dir, out, names, target, images, protocol, seed, catch, run_id)
    for note in kit.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(f"kit {kit.kit_id}: {kit.trials} trials ({kit.catch} catch) in {kit.folder}; "
               f"every image file {kit.file_bytes:,} bytes, {kit.total_bytes / 1e6:.1f} MB "
               f"in all")
    click.echo(f"open {kit.folder / 'index.html'} in a browser; keep key.json and key.csv, "
               f"hand readers the rest of the folder")




@study_group.command("analyze")
@click.argument("kit", type=click.Path(path_type=Path))
@click.argument("answers", nargs=-1, type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder of study.csv, study.md, study.json, study.png [default: KIT]; put "
                   "it inside the run's results folder and its report shows the readers' "
                   "thresholds.")
@click.option("--format", "formats", type=click.Choice(["imrmc"]), multiple=True,
              help="Also write study.imrmc, the multi-reader multi-case input of iMRMC "
                   "(and RJafroc).")
def study_analyze(kit: Path, answers: tuple[Path, ...], out: Path | None,
                  formats: tuple[str, ...]) -> None:
    """Proportions correct, verdicts, thresholds and agreement from readers' ANSWERS files."""
    from medbench.study import StudyError
    from medbench.study.analysis import analyze, markdown, write
    from medbench.study.answers import read_all, read_key
    from medbench.study.imrmc import write_imrmc

    key = read_key(kit)
    result = analyze(key, read_all(list(answers), key))
    folder = out if out is not None else Path(kit)
    try:
        paths = write(result, folder)
        if "imrmc" in formats:
            paths.append(write_imrmc(key, result.trials, folder / "study.imrmc"))
    except OSError as exc:  # --out under a file, read-only, full
        raise StudyError(f"cannot write the analysis into {folder} ({exc.strerror or exc}: "
                         f"{exc.filename or folder}); choose another --out") from None
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    click.echo(markdown(result))
    click.echo("wrote " + ", ".join(str(p) for p in paths))


if __name__ == "__main__":  # pragma: no cover
    main()
