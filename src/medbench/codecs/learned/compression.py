"""What the training loop and the codecs hold: a model with its entropy model and tables.

:class:`CompressionModel` is an autoencoder of :mod:`.models` with the factorized density
of :mod:`.entropy`, its training losses (:meth:`~CompressionModel.forward_rd`,
:meth:`~CompressionModel.estimate`) and its coding (:meth:`~CompressionModel.compress`,
:meth:`~CompressionModel.decompress`, see :mod:`.coding`). Architectures with another
entropy model subclass it (:class:`~.hyperprior.HyperpriorModel`,
:class:`~.archs.ckbd.CheckerboardModel`); :func:`medbench.codecs.learned.archs.new_model`
builds the one an architecture declares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from medbench.codecs.learned import coding
from medbench.codecs.learned.bitstream import MAGIC
from medbench.codecs.learned.entropy import (
    CodingTables,
    FactorizedDensity,
    TableError,
    build_tables,
)
from medbench.codecs.learned.models import Autoencoder
from medbench.errors import MedbenchError
from medbench.image import Image


class CheckpointError(MedbenchError):
    """A model folder that cannot be used (missing file, wrong format, bad tensors)."""


def autocast(enabled: bool):
    """bf16 autocast on CUDA when ``enabled`` (budget training); a no-op otherwise."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=enabled)


class CompressionModel(nn.Module):
    """An autoencoder, the density of its latents, and (once frozen) the coding tables.

    The training loop and the validation use only the methods below (:meth:`init_density`,
    :meth:`forward_rd`, :meth:`estimate`, :meth:`freeze_tables`), so a model with another
    entropy model (:class:`~medbench.codecs.learned.hyperprior.HyperpriorModel`) trains
    with the same loop.
    """

    #: First 4 bytes of the streams :meth:`compress` writes.
    magic: bytes = MAGIC
    #: Tensor-name prefixes of the coding tables in the weights file.
    table_prefixes: tuple[str, ...] = ("tables.",)

    def __init__(self, net: Autoencoder, components: int = 3):
        super().__init__()
        self.net: Autoencoder = net
        self.density = FactorizedDensity(self.net.density_channels, components)
        self.tables: CodingTables | None = None

    @property
    def stride(self) -> int:
        """The multiple images are padded to before the analysis transform."""
        return self.net.pad_multiple

    def config(self) -> dict[str, Any]:
        return {**self.net.config(), "components": self.density.components}

    # -- training ----------------------------------------------------------------------
    @torch.no_grad()
    def init_density(self, x: torch.Tensor) -> None:
        """Centre the density on the latents of a first batch ``x`` (data-dependent init)."""
        self.density.init_from(self.net.encode(x))

    def forward_rd(self, x: torch.Tensor, generator: torch.Generator,
                   rate_grad: bool = True, amp: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass: the reconstruction and the estimated bits of each image.

        The decoder sees the rounded latents through a straight-through gradient; the
        rate is that of the latents plus uniform noise, detached from the transforms
        unless ``rate_grad`` (so it trains only the density). ``amp``: the transforms run
        under bf16 autocast on CUDA; the rate stays float32.
        """
        with autocast(amp):
            y = self.net.encode(x)
        y = y.float()
        noise = torch.rand(y.shape, generator=generator, device=y.device, dtype=y.dtype) - 0.5
        with autocast(amp):
            x_hat = self.net.decode(y + (torch.round(y) - y).detach())
        noisy = y + noise
        return x_hat.float(), self.density.bits(noisy if rate_grad else noisy.detach())

    @torch.no_grad()
    def estimate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Reconstruction (unclipped) from rounded latents, and their estimated bits."""
        y = torch.round(self.net.encode(x))
        return self.net.decode(y), self.density.bits(y)

    def freeze_tables(self) -> None:
        """Freeze the density into the integer coding tables (the model is then finished)."""
        self.tables = build_tables(self.density)

    # -- coding ------------------------------------------------------------------------
    def compress(self, model_id: str, images: Sequence[Image],
                 device: torch.device) -> list[bytes]:
        """The complete bitstream of each image (``model_id``: 16 hex digits, written into
        the header); the model must be finished (frozen tables)."""
        return coding.encode_factorized(self, model_id, images, device)

    def decompress(self, streams: Sequence[bytes], device: torch.device) -> list[np.ndarray]:
        """Pixels of each stream (uint8 up to 8 bits, else uint16)."""
        return coding.decode_factorized(self, streams, device)

    # -- weights -----------------------------------------------------------------------
    @torch.no_grad()
    def round_to_half(self) -> None:
        """Round every floating weight and buffer to float16's values (kept as float32),
        so the model computes what its float16 checkpoint will (:meth:`weights`); freeze
        the tables and validate after this."""
        for tensor in self.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(tensor.to(torch.float16).to(tensor.dtype))

    def weights(self, half: bool = False) -> dict[str, torch.Tensor]:
        """Every tensor of the checkpoint, on the CPU, contiguous; ``half``: floating
        weights as float16 (exact after :meth:`round_to_half`; the tables stay integers)."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        if half:
            tensors = {k: v.to(torch.float16) if v.is_floating_point() else v
                       for k, v in tensors.items()}
        if self.tables is not None:
            tensors.update(self.tables.as_tensors())
        return tensors

    def check_table_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        """Raise :class:`TableError` unless ``tensors`` hold usable coding tables."""
        CodingTables.from_tensors(tensors, self.density.channels)

    def load_tables(self, tensors: dict[str, torch.Tensor]) -> None:
        """Set the coding tables from checked ``tensors`` (raises :class:`TableError`)."""
        self.tables = CodingTables.from_tensors(tensors, self.density.channels)

    def load_weights(self, tensors: dict[str, torch.Tensor], source: str) -> None:
        own = {k: v for k, v in tensors.items() if not k.startswith(self.table_prefixes)}
        try:
            self.load_state_dict(own, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{source} does not match a {self.net.arch} model with latent "
                f"{self.net.latent} and width {self.net.width} ({exc}); re-train it"
            ) from None
        if "tables.freqs" in tensors:
            try:
                self.load_tables(tensors)
            except TableError as exc:
                raise CheckpointError(f"{source}: {exc}; re-train this model") from None
