"""``ae``: the seed paper's fully connected autoencoder, on 16×16 blocks (see :mod:`..models`)."""

from medbench.codecs.learned.architecture import Architecture
from medbench.codecs.learned.compression import CompressionModel
from medbench.codecs.learned.models import BlockAE

ARCHITECTURE = Architecture(
    name="ae",
    summary="The seed paper's fully connected autoencoder (on 16×16 blocks), as a codec.",
    net=BlockAE, model=CompressionModel, latent=16, width=128,
    # the paper's MSE loss at three latent sizes (a dense model is capacity-bound)
    ladder=tuple({"objective": "mse", "latent": n} for n in (8, 16, 32)),
)
