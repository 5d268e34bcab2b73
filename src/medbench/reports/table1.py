"""The seed paper's Table 1 beside what medbench measured for the same model and dataset.

The paper (Fettah, Menassel, Gattal, TACC 2024; ``seed-paper.md``) gives MSE, PSNR and
MS-SSIM for its AE, CNN and DCAE on MXID, OPEN-I and JSRT, each trained and tested on the
same dataset, but no bit rate. Beside each of its nine rows we put our rows for the same
codec trained *and* tested on that dataset (one per setting: a learned codec is a curve),
with the columns the paper lacks: bpp, and JPEG 2000's PSNR at that bpp on the same images.

Notes
-----
The paper's images are scaled to [0, 1], so its MSE is on that scale; ours is divided by
``(2**bit_depth - 1)**2`` to match (the pooled ``nmse`` of
:func:`~medbench.reports.means.setting_means`); our PSNR is the mean over images that did
not decode exactly (their count beside it), and ``psnr_pooled`` the PSNR of ``mse_01``.
``paper_psnr_from_mse`` is ``10·log10(1 / MSE)``, the PSNR the paper's own MSE implies;
it does not agree with its PSNR column (e.g. DCAE on MXID: MSE 0.0002 means 37.0 dB, not
46.78), so which of the two it measured is unknown.
"""

from __future__ import annotations

import json
import math
from importlib import resources

import pandas as pd

from medbench.benchmark.metrics import psnr_from_mse
from medbench.reports.curves import ANCHOR, Curve
from medbench.reports.means import setting_means

#: The paper's dataset names and the medbench dataset each corresponds to.
DATASETS = {"MXID": "mxid", "OPENI": "openi", "JSRT": "jsrt"}
PAPER_COLUMNS = ["method", "dataset", "epochs", "mse", "psnr", "ms_ssim"]
COLUMNS = [
    "method", "dataset", "paper_epochs", "paper_mse", "paper_psnr", "paper_psnr_from_mse",
    "paper_ms_ssim", "codec", "setting", "protocol", "images", "epochs", "bpp", "mse_01",
    "psnr", "exact_images", "psnr_pooled", "ms_ssim", "jpeg2000_psnr_at_bpp", "training", "note",
]


def seed_table() -> pd.DataFrame:
    """The paper's nine rows, from the package data file ``seed_table1.csv``."""
    text = resources.files("medbench").joinpath("data/seed_table1.csv")
    with resources.as_file(text) as path:
        table = pd.read_csv(path)
    missing = set(PAPER_COLUMNS) - set(table.columns)
    if missing:  # pragma: no cover - packaging error
        raise ValueError(f"seed_table1.csv lacks columns {sorted(missing)}")
    return table[PAPER_COLUMNS]


def paper_codecs() -> list[str]:
    """The codecs of the paper's rows (``ae``, ``cnn``, ``dcae``): the only rows Table 1
    reads."""
    return sorted({str(m).lower() for m in seed_table()["method"]})


#: ``model_info`` keys worth a column, in this order (the training budget first).
SUMMARY_KEYS = ("epochs", "device", "device_name", "wall_s", "steps", "images_seen",
                "latent", "objective", "lmbda")


def model_summary(info: object) -> str:
    """A short text of a learned model's ``model_info``: its training budget and shape
    (for a model started from another, its steps, seconds and images include that
    model's, and its own epochs are not given, as in the headline).

    Keys of :data:`SUMMARY_KEYS` are looked up at the top level and one level down (e.g.
    ``{"budget": {"wall_s": ...}}``); other JSON falls back to its first scalar fields.
    """
    if info is None or (isinstance(info, float) and math.isnan(info)) or info == "":
        return ""
    try:
        data = json.loads(info) if isinstance(info, str) else info
    except (TypeError, ValueError):
        return str(info)[:120]
    if not isinstance(data, dict):
        return str(data)[:120]
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):  # one level of nesting
            for k, v in value.items():
                if not isinstance(v, (dict, list)) and v is not None:
                    flat.setdefault(k, v)
        elif not isinstance(value, list) and value is not None:
            flat.setdefault(key, value)
    inherited = parent_budget(data)
    if inherited:  # started from another model (train --init): count its training too
        flat.pop("epochs", None)  # the record keeps only the model's own epochs
        for key, value in inherited.items():
            if isinstance(flat.get(key), (int, float)):
                flat[key] = flat[key] + value
    keys = [k for k in SUMMARY_KEYS if k in flat] or list(flat)
    text = ", ".join(f"{k}={_short(flat[k])}" for k in keys)
    if inherited.get("steps"):
        text += f" (incl. {_short(inherited['steps'])} steps of the model started from)"
    return text[:200]


def parent_budget(data: dict) -> dict[str, float]:
    """The steps, seconds and images of the model ``data``'s model was started from
    (``parent.budget``; empty for a model trained from scratch)."""
    parent = data.get("parent")
    budget = parent.get("budget") if isinstance(parent, dict) else None
    if not isinstance(budget, dict):
        return {}
    return {k: budget[k] for k in ("steps", "wall_s", "images_seen")
            if isinstance(budget.get(k), (int, float)) and math.isfinite(budget[k])}


def _short(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _epochs(info: object) -> float:
    """A model's epochs (NaN where unknown, or not all of its training)."""
    try:
        data = json.loads(info) if isinstance(info, str) else info
    except (TypeError, ValueError):
        return math.nan
    if not isinstance(data, dict) or parent_budget(data):
        return math.nan  # a fine-tuned model's record keeps only its own epochs
    for holder in (data, *[v for v in data.values() if isinstance(v, dict)]):
        if "epochs" in holder and isinstance(holder["epochs"], (int, float)):
            return float(holder["epochs"])
    return math.nan


def _base(name: object) -> str:
    return str(name or "").partition(":")[0].lower()


def table1_comparison(rows: pd.DataFrame, all_curves: list[Curve],
                      datasets: list[str] | None = None) -> pd.DataFrame:
    """The paper's rows, each followed by ours for the same codec and dataset
    (``datasets``: the run's, where ``rows`` hold only the paper's codecs' rows)."""
    paper = seed_table()
    ok = rows[rows["status"] == "ok"]
    run_datasets = sorted({str(d) for d in rows["dataset"].dropna()}) if datasets is None \
        else sorted(datasets)
    anchors = {c.dataset: c for c in all_curves if c.codec == ANCHOR and not c.train_dataset}
    out = []
    for p in paper.itertuples(index=False):
        base = {
            "method": p.method, "dataset": p.dataset, "paper_epochs": p.epochs,
            "paper_mse": p.mse, "paper_psnr": p.psnr,
            "paper_psnr_from_mse": psnr_from_mse(p.mse, 1.0),
            "paper_ms_ssim": p.ms_ssim, "codec": p.method.lower(),
        }
        name = DATASETS.get(p.dataset, p.dataset.lower())
        datasets = [d for d in run_datasets if _base(d) == name]
        if not datasets:
            out.append({**base, "note": f"dataset {name} was not run"})
            continue
        mine = ok[ok["dataset"].isin(datasets) & (ok["codec"] == base["codec"])]
        if mine.empty:
            out.append({**base, "note": f"{base['codec']} was not run on {name}"})
            continue
        same = mine[mine["train_dataset"].map(_base) == name]
        if same.empty:
            trained = ", ".join(sorted({str(t) for t in mine["train_dataset"].dropna()}))
            out.append({**base, "note": f"no {base['codec']} model trained on {name} in this "
                                        f"run (trained on: {trained or 'none'})"})
            continue
        out.extend(_our_rows(base, same, anchors))
    return pd.DataFrame(out, columns=COLUMNS)


def _our_rows(base: dict, same: pd.DataFrame, anchors: dict[str, Curve]) -> list[dict]:
    out = []
    for line in setting_means(same).itertuples(index=False):
        if not line.images:
            continue
        g = same[(same["dataset"] == line.dataset) & (same["setting"] == line.setting)]
        anchor = anchors.get(line.dataset)
        anchor_psnr = anchor.at(line.bpp, "psnr") if anchor else math.nan
        if anchor is None:
            note = f"no {ANCHOR} rows on {line.dataset}"
        elif math.isnan(anchor_psnr):
            rate = anchor.envelope("psnr")[0]
            note = (f"bpp outside {ANCHOR}'s measured range "
                    f"({rate.min():.3g}–{rate.max():.3g})" if len(rate) else "")
        else:
            note = ""
        info = g["model_info"].dropna()
        out.append(
            {
                **base,
                "setting": line.setting,
                "protocol": ",".join(sorted({str(x) for x in g["protocol"].dropna()})),
                "images": line.images,
                "epochs": _epochs(info.iloc[0]) if len(info) else math.nan,
                "bpp": line.bpp,
                "mse_01": line.nmse,
                "psnr": line.psnr,
                "exact_images": line.exact_images,
                "psnr_pooled": line.psnr_pooled,
                "ms_ssim": line.ms_ssim,
                "jpeg2000_psnr_at_bpp": anchor_psnr,
                "training": model_summary(info.iloc[0]) if len(info) else "",
                "note": note,
            }
        )
    return sorted(out, key=lambda r: r["bpp"])
