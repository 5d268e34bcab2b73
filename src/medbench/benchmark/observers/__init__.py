"""Task-based detectability (``run --observer nodules``): can a nodule still be seen after coding?

Simulated lung nodules are added to each image in its lung fields; every codec setting
codes the image with and without them, and two model observers standard in medical
imaging physics, a channelized Hotelling observer (Laguerre–Gauss channels) and a
non-prewhitening observer with an eye filter (NPWE), score each site in both decodes. The
result is d' (and AUC) per codec, setting, observer, nodule size and contrast, and the
ratio of d' coded to d' original on the same sites, with bootstrap intervals over
patients.

One idea per module:

``nodules``        the projected-sphere nodule, its sampling, its insertion (never clipped)
``sites``          pixel spacing, the lung fields (``--masks`` or a rule), sites in them
``templates``      Laguerre–Gauss channels and the NPWE template (eye filter)
``experiment``     one image: plan its sites and nodules once, observe every decode
``detectability``  d', AUC, the CHO fit with cross-validation by patient, the bootstrap
``summary``        the run's sites → the ``observer`` table
``storage``        the two store tables (``observer_sites``, ``observer``)

Reports read the table through :mod:`medbench.reports.observer` (which also gives the
task-lossless limits).
"""
