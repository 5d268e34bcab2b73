"""Reader studies: blinded reading kits made from a run's kept pixels, and their analysis.

- :mod:`~medbench.study.kit`: ``medbench study make`` — trials chosen from the images a run
  kept (``run --keep-pixels``), seeded order, blinded image files, ``key.json``.
- :mod:`~medbench.study.page`: the kit's one offline ``index.html`` (window/level, zoom,
  keyboard answers, resume, answers downloaded as JSON).
- :mod:`~medbench.study.answers`: reading and checking answers files against the key.
- :mod:`~medbench.study.analysis`: ``medbench study analyze`` — proportions correct with
  exact intervals, verdicts, ratings, agreement, ``study.csv``/``study.md``/figure.
- :mod:`~medbench.study.imrmc`: the multi-reader multi-case input file of iMRMC.
"""

from medbench.errors import MedbenchError


class StudyError(MedbenchError):
    """A reader-study input (results folder, kit folder, answers file) cannot be used."""
