"""Training of the learned codecs (``medbench train``, ``medbench run --train-missing``).

Modules: ``config`` (:class:`~medbench.training.config.TrainConfig`, the command line
that reproduces it), ``data`` (train and val images, chosen through the same split
manifest as ``medbench run``; random crops), ``loop`` (:func:`~medbench.training.loop.train`:
the optimisation, early stopping, resuming, the saved checkpoint), ``validation`` (scores
on the val split through :mod:`medbench.benchmark.metrics`) and ``missing`` (models a run
lacks). Checkpoints are written for :mod:`medbench.codecs.learned`, which never imports
this package.
"""
