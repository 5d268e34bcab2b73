"""Learned codecs: the seed paper's AE, CNN and DCAE, coding real bytes.

Modules: ``models`` (the transforms), ``entropy`` (per-channel density, integer coding
tables, ANS with constriction), ``gaussian`` (the hyperprior's scale-ladder tables),
``compression`` (model + entropy model), ``bitstream`` (header), ``checkpoint``
(safetensors + JSON), ``coding`` (images ⇄ bytes in batches), ``hyperprior`` (its
deterministic coding) and ``codec`` (the ``ae``, ``cnn``, ``dcae`` and ``hyperprior``
codecs). A codec sees one image at a time: training, which reads
datasets, is the ``training`` package one layer up.
"""
