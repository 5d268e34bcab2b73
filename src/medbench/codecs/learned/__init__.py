"""Learned codecs: the seed paper's AE, CNN and DCAE, coding real bytes.

Modules: ``models`` (the three autoencoders), ``entropy`` (per-channel density, integer
coding tables, ANS with constriction), ``bitstream`` (header), ``checkpoint``
(safetensors + JSON), ``coding`` (images ⇄ bytes in batches) and ``codec`` (the ``ae``,
``cnn`` and ``dcae`` codecs). A codec sees one image at a time: training, which reads
datasets, is the ``training`` package one layer up.
"""
