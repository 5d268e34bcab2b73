"""The iMRMC input file of a paired (2afc, revealed) study, for MRMC analyses done there.

iMRMC (FDA/CDRH, DIDSR; also read by RJafroc's ``DfReadDataFile(format = "iMRMC")``) reads a
text file: free description lines, then ``NR:`` readers, ``N0:`` signal-absent and ``N1:``
signal-present cases, ``NM:`` modalities, then ``BEGIN DATA:`` and one line per observation
``readerID,caseID,modalityID,score``; truth lines have reader ``-1`` and modality ``0``
with score 0 (absent) or 1 (present). Case ids are whole numbers.

Mapping. Each chosen image ``k`` gives two cases: its original (case ``2k+1``, truth 0)
and its coded version (case ``2k+2``, truth 1). A modality is one codec at one ratio. In a
trial the reader scores the image they took for coded 1 and the other 0. Over a reader's
trials of one modality the AUC of these scores is then exactly the proportion correct
(a right answer scores the pair (1, 0), a wrong one (0, 1); the AUC over all cross pairs
is p² + p(1 − p) = p), so iMRMC's reader-and-case variance of the AUC is the MRMC interval
of the 2AFC proportion correct. Catch trials are left out.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medbench.study import StudyError


def write_imrmc(key: dict, trials: pd.DataFrame, path: Path) -> Path:
    """Write ``path`` (``.imrmc``) from the analysis' trial table (module notes)."""
    if key["protocol"] == "rating":
        raise StudyError("--format imrmc needs a paired study (2afc or revealed): a rating "
                         "study has no truth to score against; analyze it without "
                         "--format imrmc")
    tests = trials[trials["kind"] == "test"]
    images = {image: i for i, image in enumerate(key["images"])}
    readers = {r: i + 1 for i, r in enumerate(sorted(tests["reader"].unique()))}
    modalities = sorted({(c, float(r)) for c, r in zip(tests["codec"], tests["ratio"])})
    names = {m: f"{m[0]}@{m[1]:g}" for m in modalities}
    lines = [f"medbench reader study {key['kit_id']} ({key['protocol']}), run {key['run_id']}",
             "cases 2k+1: image k's original (truth 0); 2k+2: its coded version (truth 1);",
             "score 1: the reader took that image for the coded one. Readers: "
             + ", ".join(f"{i}={r}" for r, i in readers.items()),
             f"NR: {len(readers)}", f"N0: {len(images)}", f"N1: {len(images)}",
             f"NM: {len(modalities)}", "", "BEGIN DATA:"]
    for k in range(len(images)):
        lines += [f"-1,{2 * k + 1},0,0", f"-1,{2 * k + 2},0,1"]
    for line in tests.itertuples():
        k = images[f"{line.dataset}/{line.image_id}"]
        coded_score = 1 if line.correct else 0
        reader, modality = readers[line.reader], names[(line.codec, float(line.ratio))]
        lines += [f"{reader},{2 * k + 1},{modality},{1 - coded_score}",
                  f"{reader},{2 * k + 2},{modality},{coded_score}"]
    Path(path).write_text("\n".join(lines) + "\n", encoding="ascii", errors="replace")
    return Path(path)
