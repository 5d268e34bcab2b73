"""Learned codecs: the seed paper's AE, CNN and DCAE, trained here, coding real bytes.

Modules: ``models`` (the three autoencoders), ``entropy`` (per-channel density, integer
coding tables, ANS with constriction), ``bitstream`` (header), ``checkpoint``
(safetensors + JSON), ``coding`` (images ⇄ bytes in batches), ``data`` and ``training``
(``medbench train``), ``missing`` (``medbench run --train-missing``) and ``codec`` (the
``ae``, ``cnn`` and ``dcae`` codecs).
"""
