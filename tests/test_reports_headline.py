"""The headline (answer first), the BD table's flags and the codecs' fixed figure styles."""

from __future__ import annotations

import json
import math

import pandas as pd

from medbench.reports.bd import bd_table
from medbench.reports.build import bd_cells
from medbench.reports.curves import curves
from medbench.reports.figures import CODEC_STYLES, FAMILY_COLORS, codec_style, coinciding
from medbench.reports.headline import headline, to_html, to_markdown


def _rows(learned_info=None, rates=(0.1, 0.2, 0.4, 0.8, 1.6), patients=True):
    rows = []

    def add(codec, k, bpp, psnr, image, **extra):
        rows.append({"dataset": "d", "split": "test", "image_id": image,
                     "group_id": "p0" if patients else image, "group_kind": "patient",
                     "protocol": "paper",
                     "bit_depth": 8, "height": 64, "width": 64, "codec": codec,
                     "setting": f"s{k}", "setting_rank": k, "bpp": bpp, "psnr": psnr,
                     "ms_ssim": 1 - 10 ** (-psnr / 20), "mse": 1.0, "status": "ok",
                     "codec_kind": "classical", "train_dataset": None, **extra})

    for image in ("a", "b"):
        for k, r in enumerate(rates):
            base = 30 + 10 * math.log10(r / 0.1)
            add("jpeg2000", k, r, base, image)
            add("jpeg", k, r, base - 1, image)
            add("jpeg12", k, r, base - 1, image)  # the same numbers as jpeg
            add("webp", k, r, base + 0.5, image)
        if learned_info is not None:
            for k, r in enumerate((0.3, 0.5, 0.9)):
                add("dcae", k, r, 28 + 10 * math.log10(r / 0.1), image,
                    codec_kind="learned", train_dataset="d", model_info=json.dumps(learned_info))
    return pd.DataFrame(rows)


def test_headline_says_what_ran_and_the_best_codec_at_each_clinical_ratio():
    rows = _rows()
    (h,) = headline(rows, curves(rows), bd_table(curves(rows)))
    assert h.lines[0].startswith("4 classical codecs (jpeg, jpeg12, jpeg2000, webp) on 2 test "
                                 "images from 1 patient at protocol paper (64×64, 8-bit)")
    assert h.lines[1].startswith("At 10:1 (0.8 bpp): best PSNR webp 39.53 dB (+0.50 dB over "
                                 "jpeg2000 on the same 2 images, too few for an interval), "
                                 "then jpeg2000 39.03, jpeg 38.03 (")
    assert "4 of 4 curves reach this rate" in h.lines[1]
    assert h.lines[-1] == "No learned codec in this run."


def test_headline_names_what_the_groups_are():
    """OPEN-I groups images by report, sample by radiograph: not 'patients'."""
    for kind, words in (("report", "from 1 report at"), ("radiograph", "from 1 radiograph at"),
                        (None, "from 1 group at")):
        rows = _rows().assign(group_kind=kind)
        (h,) = headline(rows, curves(rows), bd_table(curves(rows)))
        assert words in h.lines[0], h.lines[0]


def test_headline_says_when_no_curve_reaches_a_clinical_rate():
    rows = _rows(rates=(1.0, 2.0, 4.0))  # 30:1 of 8-bit is 0.267 bpp: below every curve
    (h,) = headline(rows, curves(rows), bd_table(curves(rows)))
    assert "At 30:1 (0.267 bpp): no codec's RD curve reaches this rate" in h.lines[2]


def test_learned_codecs_show_bd_psnr_budget_and_warnings():
    info = {"epochs": 2, "budget": {"steps": 120, "wall_s": 35.0, "device": "cpu"},
            "history": [{"epoch": 2, "train_loss": 0.01, "loss": 0.05}]}
    rows = _rows(info)
    (h,) = headline(rows, curves(rows), bd_table(curves(rows)))
    (learned,) = h.learned
    assert learned.label == "dcae (train d)"
    assert learned.against_anchor.startswith("-") and "dB" in learned.against_anchor
    assert learned.budget == "2 epochs, 120 steps, 35 s, cpu, 3 models"
    assert learned.warnings[0] == "tiny budget (2 epochs < 5, 120 steps < 1000, 35 s < 60)"
    assert "validation far below its training trend" in learned.warnings[1]
    page, md = to_html([h]), to_markdown([h])
    assert '<td class="warn">tiny budget' in page and "⚠ tiny budget: under 5 epochs" in md
    big = _rows({"epochs": 50, "budget": {"steps": 5000, "wall_s": 900.0}})
    (h,) = headline(big, curves(big), bd_table(curves(big)))
    assert h.learned[0].warnings == []


def test_bd_cells_mark_unreliable_values_where_the_number_is():
    rows = _rows(rates=(0.1, 0.2, 0.4, 0.8, 1.6))
    shifted = rows[rows["codec"] == "webp"].assign(codec="far", bpp=lambda f: f["bpp"] * 3)
    rows = pd.concat([rows, shifted], ignore_index=True)
    text, classes = bd_cells(bd_table(curves(rows)))
    far = text.index[text["codec"] == "far"][0]
    cell = text.at[far, "BD-PSNR dB"]
    assert "†" in cell and "overlap)" in cell and "unreliable" in classes.at[far, "BD-PSNR dB"]
    webp = text.index[text["codec"] == "webp"][0]
    assert "†" not in text.at[webp, "BD-PSNR dB"]
    assert "unreliable" not in classes.at[webp, "BD-PSNR dB"]
    assert "dataset" not in text  # one dataset: no column for it


def test_codec_styles_are_fixed_and_new_codecs_hash_within_their_family():
    assert codec_style("jpeg2000") == ("#000000", "s")
    assert codec_style("jpeg2000", "learned") == CODEC_STYLES["jpeg2000"]
    color, marker = codec_style("hyperprior", "learned")
    assert color in FAMILY_COLORS["learned"] and codec_style("hyperprior", "learned") == (
        color, marker)
    assert codec_style("mycodec")[0] in FAMILY_COLORS["classical"]
    rows = _rows()
    assert coinciding(curves(rows)) == [("jpeg12", "jpeg")]


def test_a_fine_tuned_models_budget_includes_the_model_it_started_from():
    """``train --init``: a model trained 10,000 steps from a 30,848-step parent had 40,848."""
    info = {"epochs": 528, "budget": {"steps": 10000, "wall_s": 784.0, "device": "cpu"},
            "parent": {"name": "nih-l48-lam0.002",
                       "budget": {"steps": 30848, "wall_s": 2700.0, "device": "cpu"}}}
    rows = _rows(info)
    (h,) = headline(rows, curves(rows), bd_table(curves(rows)))
    (learned,) = h.learned
    assert learned.budget == ("40848 steps, 3484 s, cpu, 3 models "
                              "(incl. 30848 steps of the models started from)")
    assert not learned.warnings  # and no epochs: the parent's are not recorded
