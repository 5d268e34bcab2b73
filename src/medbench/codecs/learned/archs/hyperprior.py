"""``hyperprior``: the mean-scale hyperprior (transforms in :mod:`..models`, entropy model
and deterministic coding in :mod:`..hyperprior`)."""

from medbench.codecs.learned.architecture import Architecture
from medbench.codecs.learned.hyperprior import HyperpriorModel
from medbench.codecs.learned.models import MeanScaleHyperprior

ARCHITECTURE = Architecture(
    name="hyperprior",
    summary="The mean-scale hyperprior (Minnen, Ballé, Toderici 2018): the learned "
            "reference.",
    net=MeanScaleHyperprior, model=HyperpriorModel, latent=96, width=64,
    ladder=tuple({"objective": "rd", "lmbda": lam} for lam in (1e-2, 3e-3, 1e-3, 3e-4)),
)
