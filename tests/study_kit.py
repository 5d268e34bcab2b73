"""A small run with kept pixels and a 2afc kit made from it, shared by the study tests
(made once per test session: a run costs seconds on two cores)."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from medbench.cli import main
from medbench.study.answers import fnv1a32

_MADE: dict[str, tuple[Path, Path]] = {}


def invoke(*args, code: int = 0) -> str:
    result = CliRunner().invoke(main, [str(a) for a in args])
    assert result.exit_code == code, result.output
    return result.output


def kept_run(tmp_path_factory) -> tuple[Path, Path]:
    """(results folder, kit folder): 6 sample tiles at 128² (native bit depth) coded by
    jpeg2000 and jpegxl at 10:1 and 20:1 with --keep-pixels (jpegxl misses 20:1 on some); a
    kit of 3 images, seed 5."""
    if "run" not in _MADE:
        results = tmp_path_factory.mktemp("kept-run")
        invoke("run", "--codecs", "jpeg2000,jpegxl", "--datasets", "sample", "--protocol",
               "native", "--size", "128", "--limit", "6", "--target", "ratio=10,20",
               "--keep-pixels", "--out", results, "--no-report", "--no-progress",
               "--repeats", "0")
        kit = results / "kit"
        invoke("study", "make", results, "--codecs", "jpeg2000,jpegxl", "--target",
               "ratio=10,20", "--images", "3", "--out", kit, "--seed", "5")
        _MADE["run"] = (results, kit)
    return _MADE["run"]


def answers_file(path: Path, key: dict, reader: str, choose, skip: int = 0) -> Path:
    """An answers file as the page writes it (``choose(trial) -> answer``), leaving the
    last ``skip`` trials unanswered."""
    trials = key["trials"][:len(key["trials"]) - skip]
    answers = [{"trial": t["id"], "answer": choose(t), "ms": 900 + i,
                "at": "2026-12-06T08:00:00.000Z", "window": [100, 200], "zoom": "1"}
               for i, t in enumerate(trials)]
    doc = {"format": "medbench-study-answers", "version": 1, "kit_id": key["kit_id"],
           "protocol": key["protocol"], "reader": reader, "complete": not skip,
           "n_trials": len(key["trials"]), "answers": answers,
           "digest": fnv1a32(json.dumps([key["kit_id"], reader, answers],
                                        separators=(",", ":"), ensure_ascii=False))}
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return path
