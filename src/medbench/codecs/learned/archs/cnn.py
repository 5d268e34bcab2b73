"""``cnn``: the seed paper's shallow convolutional autoencoder (see :mod:`..models`)."""

from medbench.codecs.learned.architecture import Architecture
from medbench.codecs.learned.compression import CompressionModel
from medbench.codecs.learned.models import ShallowCNN

ARCHITECTURE = Architecture(
    name="cnn",
    summary="The seed paper's shallow convolutional autoencoder, as a codec.",
    net=ShallowCNN, model=CompressionModel, latent=4, width=32,
    ladder=tuple({"objective": "rd", "lmbda": lam} for lam in (1e-2, 1e-3, 1e-4)),
)
