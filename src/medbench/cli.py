"""The ``medbench`` command line: run, codecs, datasets."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from medbench import __version__
from medbench.errors import MedbenchError, UnknownNameError

USAGE_EXIT = 2


class MedbenchGroup(click.Group):
    """Prints user-caused errors as one line (``Error: ...``) instead of a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except UnknownNameError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(USAGE_EXIT)
        except MedbenchError as exc:
            click.echo(f"Error: {exc}", err=True)
            ctx.exit(1)


def _split_names(value: str | None) -> list[str] | None:
    if value is None:
        return None
    names = [v.strip() for v in value.split(",") if v.strip()]
    return names or None


@click.group(cls=MedbenchGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="medbench")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Benchmark image codecs on X-ray radiographs: rate, distortion and latency."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


# -- run -------------------------------------------------------------------------------
@main.command()
@click.option("--codecs", "codecs", default="all", show_default=True,
              help="Comma-separated codec names, or 'all' (every available codec).")
@click.option("--datasets", "datasets", default="sample", show_default=True,
              help="Comma-separated dataset names (e.g. sample, folder:PATH).")
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path),
              default=lambda: os.environ.get("MEDBENCH_DATA"),
              help="Folder holding one sub-folder per dataset [env MEDBENCH_DATA].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              default=Path("medbench-results"), show_default=True, help="Results folder.")
@click.option("--protocol", default="paper", show_default=True,
              help="paper (256x256, 8-bit) or native (native size and bit depth).")
@click.option("--size", default=None, help="Override the protocol's size: N or native.")
@click.option("--bit-depth", "bit_depth", default=None,
              help="Override the protocol's bit depth: N or native.")
@click.option("--split", default="test", show_default=True,
              type=click.Choice(["test", "train", "val", "all"]), help="Which split to code.")
@click.option("--limit", type=click.IntRange(min=1), default=None,
              help="At most N images per dataset.")
@click.option("--repeats", type=click.IntRange(min=0), default=3, show_default=True,
              help="Timed repeats per encode/decode (median reported, after one warm-up).")
@click.option("--models", "models_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("medbench-models"), show_default=True,
              help="Folder of trained learned-codec models.")
@click.option("--device", default="auto", show_default=True,
              type=click.Choice(["auto", "cpu", "cuda"]), help="Device for learned codecs.")
@click.option("--resume", is_flag=True,
              help="Continue the latest run in --out (with its original arguments).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def run(codecs, datasets, data_root, out, protocol, size, bit_depth, split, limit, repeats,
        models_dir, device, resume, no_progress) -> None:
    """Code every image of the chosen datasets with every codec and setting."""
    from medbench.benchmark.runner import RunConfig
    from medbench.benchmark.runner import run as run_benchmark
    from medbench.reports.summary import format_table, summarize

    codec_list = None if codecs.strip().lower() == "all" else _split_names(codecs)
    config = RunConfig(
        codecs=codec_list,
        datasets=_split_names(datasets) or ["sample"],
        data_root=str(data_root) if data_root else None,
        protocol=protocol,
        size=size,
        bit_depth=bit_depth,
        split=split,
        limit=limit,
        repeats=repeats,
        models_dir=str(models_dir),
        device=device,
    )

    def progress(total: int):
        from tqdm import tqdm

        return tqdm(total=total, unit="cell", desc="coding", disable=no_progress,
                    file=sys.stderr, dynamic_ncols=True)

    try:
        result = run_benchmark(config, out, resume=resume, progress=progress,
                               echo=lambda m: click.echo(m, err=True))
    except KeyboardInterrupt:
        click.echo(f"\nInterrupted. Finished cells are saved in {out}; continue with "
                   f"`medbench run --out {out} --resume`.", err=True)
        sys.exit(130)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)
    table = summarize(result.rows)
    click.echo(format_table(table))
    errors = int((result.rows["status"] == "error").sum()) if len(result.rows) else 0
    click.echo("")
    click.echo(f"run {result.run_id}: {len(result.rows)} rows, {errors} errors")
    if errors:
        first = result.rows[result.rows["status"] == "error"].iloc[0]
        click.echo(f"first error: {first['codec']} {first['setting']} {first['image_id']}: "
                   f"{first['error']}")
    click.echo(f"results: {result.csv_path}")
    click.echo(f"store:   {result.store_path}")


# -- codecs ------------------------------------------------------------------------------
@main.command("codecs")
def codecs_cmd() -> None:
    """List the registered codecs, their bit depths and operating points."""
    from medbench.codecs import CodecContext, codec_names, get_codec, registry

    context = CodecContext()
    for name in codec_names():
        info = get_codec(name, context).describe()
        status = f"unavailable: {info['unavailable']}" if info["unavailable"] else "available"
        click.echo(f"{name}  [{info['kind']}, {info['bit_depths']}-bit, {status}]")
        click.echo(f"    settings: {', '.join(info['settings']) or '(none)'}")
        if info["rate_knob"]:
            click.echo(f"    knob:     {info['rate_knob']}")
    for name, reason in registry.broken.items():
        click.echo(f"{name}  [failed to load: {reason}]")


# -- datasets ------------------------------------------------------------------------------
@main.group("datasets", invoke_without_command=True, cls=MedbenchGroup)
@click.option("--data-root", type=click.Path(file_okay=False, path_type=Path),
              default=lambda: os.environ.get("MEDBENCH_DATA"),
              help="Folder holding one sub-folder per dataset [env MEDBENCH_DATA].")
@click.pass_context
def datasets_cmd(ctx: click.Context, data_root: Path | None) -> None:
    """List the registered datasets and whether each is found under --data-root."""
    if ctx.invoked_subcommand is not None:
        return
    from medbench.datasets import dataset_names, get_dataset, registry

    for name in dataset_names():
        cls = registry.get(name)
        folder = getattr(cls, "folder", None)
        if name == "folder":
            status = "use as folder:PATH"
        elif folder is None:
            status = "built in"
        elif data_root is None:
            status = "needs --data-root"
        else:
            try:
                n = len(get_dataset(name, Path(data_root)).records())
                status = f"found, {n} images"
            except MedbenchError as exc:
                status = f"not found ({exc})"
        click.echo(f"{name:10s} {status:40s} {getattr(cls, 'description', '')}")
    for name, reason in registry.broken.items():
        click.echo(f"{name:10s} failed to load: {reason}")


if __name__ == "__main__":  # pragma: no cover
    main()
