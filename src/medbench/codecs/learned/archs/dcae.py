"""``dcae``: the seed paper's deep convolutional autoencoder (see :mod:`..models`)."""

from medbench.codecs.learned.architecture import Architecture
from medbench.codecs.learned.compression import CompressionModel
from medbench.codecs.learned.models import DeepCAE

ARCHITECTURE = Architecture(
    name="dcae",
    summary="The seed paper's deep convolutional autoencoder (PReLU), as a codec.",
    net=DeepCAE, model=CompressionModel, latent=16, width=32,
    ladder=tuple({"objective": "rd", "lmbda": lam} for lam in (1e-2, 1e-3, 1e-4, 1e-5)),
)
