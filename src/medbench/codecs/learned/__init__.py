"""Learned codecs: the seed paper's AE, CNN and DCAE, the hyperprior and ``ckbd``, coding
real bytes.

Modules: ``architecture`` (what an architecture declares) and ``archs`` (the registry:
one module per architecture, ``archs/ckbd.py`` the checkerboard context model whole),
``models`` (the shared transforms), ``entropy`` (per-channel density, integer coding
tables, ANS with constriction), ``gaussian`` (the scale-ladder tables), ``compression``
(model + entropy model + coding), ``bitstream`` (header), ``checkpoint`` (safetensors +
JSON), ``coding`` (images ⇄ bytes), ``hyperprior`` (its model and deterministic coding)
and ``codec`` (one codec per architecture). A codec sees one image at a time: training,
which reads datasets, is the ``training`` package one layer up.
"""
