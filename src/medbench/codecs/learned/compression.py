"""What the training loop and the codecs hold: a model with its entropy model and tables.

:class:`CompressionModel` is an autoencoder of :mod:`.models` with the factorized density
of :mod:`.entropy`; :class:`HyperpriorModel` adds the hyperprior's Gaussian conditional
(:mod:`.gaussian`; its coding is :mod:`.hyperprior`). :func:`new_model` builds either.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call

from medbench.codecs.learned import gaussian
from medbench.codecs.learned.entropy import (
    CodingTables,
    FactorizedDensity,
    TableError,
    build_tables,
)
from medbench.codecs.learned.models import Autoencoder, MeanScaleHyperprior, build_model
from medbench.errors import MedbenchError


class CheckpointError(MedbenchError):
    """A model folder that cannot be used (missing file, wrong format, bad tensors)."""


def _autocast(enabled: bool):
    """bf16 autocast on CUDA when ``enabled`` (budget training); a no-op otherwise."""
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=enabled)


class CompressionModel(nn.Module):
    """An autoencoder, the density of its latents, and (once frozen) the coding tables.

    The training loop and the validation use only the methods below (:meth:`init_density`,
    :meth:`forward_rd`, :meth:`estimate`, :meth:`freeze_tables`), so a model with another
    entropy model (:class:`~medbench.codecs.learned.hyperprior.HyperpriorModel`) trains
    with the same loop.
    """

    #: Tensor-name prefixes of the coding tables in the weights file.
    table_prefixes: tuple[str, ...] = ("tables.",)

    def __init__(self, arch: str, latent: int | None = None, width: int | None = None,
                 components: int = 3):
        super().__init__()
        self.net: Autoencoder = build_model(arch, latent, width)
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
        with _autocast(amp):
            y = self.net.encode(x)
        y = y.float()
        noise = torch.rand(y.shape, generator=generator, device=y.device, dtype=y.dtype) - 0.5
        with _autocast(amp):
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

    # -- weights -----------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        """Every tensor of the checkpoint, on the CPU, contiguous."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
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


def new_model(arch: str, latent: int | None = None, width: int | None = None,
              components: int = 3) -> CompressionModel:
    """A freshly initialised compression model of architecture ``arch``."""
    if arch == "hyperprior":
        return HyperpriorModel(arch, latent, width, components)
    return CompressionModel(arch, latent, width, components)


class HyperpriorModel(CompressionModel):
    """Mean-scale hyperprior: the transforms, the density of ``z``, and two sets of tables
    (factorized for ``z``, the Gaussian ladder for ``y``) once frozen."""

    table_prefixes = ("tables.", "scale_tables.", "scale_ladder")
    net: MeanScaleHyperprior

    def __init__(self, arch: str = "hyperprior", latent: int | None = None,
                 width: int | None = None, components: int = 3):
        super().__init__(arch, latent, width, components)
        self.scale_tables: CodingTables | None = None
        self.ladder: np.ndarray | None = None

    # -- training ----------------------------------------------------------------------
    @torch.no_grad()
    def init_density(self, x: torch.Tensor) -> None:
        self.density.init_from(self.net.hyper_encode(self.net.encode(x)))

    def _params(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        means, raw = self.net.hyper_decode(z)
        return means, torch.nn.functional.softplus(raw)

    def forward_rd(self, x: torch.Tensor, generator: torch.Generator,
                   rate_grad: bool = True, amp: bool = False
                   ) -> tuple[torch.Tensor, torch.Tensor]:
        """Training pass (see :meth:`CompressionModel.forward_rd`): bits of ``z`` under the
        factorized density plus bits of ``y`` under the Gaussian conditional. Without
        ``rate_grad`` the hyper transforms still learn to model ``y``, but ``y`` itself
        is detached from the rate. ``amp``: only the main transforms use bf16."""
        def noise(t: torch.Tensor) -> torch.Tensor:
            return torch.rand(t.shape, generator=generator, device=t.device,
                              dtype=t.dtype) - 0.5

        with _autocast(amp):
            y = self.net.encode(x)
        y = y.float()
        y_rate = y if rate_grad else y.detach()
        z_noisy = self.net.hyper_encode(y_rate)
        z_noisy = z_noisy + noise(z_noisy)
        means, scales = self._params(z_noisy)
        y_hat = means + (torch.round(y - means) - (y - means)).detach() + (y - means)
        with _autocast(amp):
            x_hat = self.net.decode(y_hat).float()
        p = gaussian.likelihood(y_rate + noise(y) - means, scales)
        bits = self.density.bits(z_noisy) - torch.log2(p).flatten(1).sum(dim=1)
        return x_hat, bits

    @torch.no_grad()
    def estimate(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.net.encode(x)
        z = torch.round(self.net.hyper_encode(y))
        means, scales = self._params(z)
        q = torch.round(y - means)
        bits = (self.density.bits(z)
                - torch.log2(gaussian.likelihood(q, scales)).flatten(1).sum(dim=1))
        return self.net.decode(q + means), bits

    def freeze_tables(self) -> None:
        super().freeze_tables()
        self.ladder = gaussian.scale_ladder()
        self.scale_tables = gaussian.ladder_tables(self.ladder)

    # -- weights -----------------------------------------------------------------------
    def weights(self) -> dict[str, torch.Tensor]:
        tensors = super().weights()
        if self.scale_tables is not None and self.ladder is not None:
            tensors.update(self.scale_tables.as_tensors("scale_tables"))
            tensors["scale_ladder"] = torch.from_numpy(self.ladder.astype(np.float64))
        return tensors

    def check_table_tensors(self, tensors: dict[str, torch.Tensor]) -> None:
        self._read_scale_tables(tensors)
        super().check_table_tensors(tensors)

    def load_tables(self, tensors: dict[str, torch.Tensor]) -> None:
        self.scale_tables, self.ladder = self._read_scale_tables(tensors)
        super().load_tables(tensors)

    @staticmethod
    def _read_scale_tables(tensors) -> tuple[CodingTables, np.ndarray]:
        if "scale_ladder" not in tensors:
            raise TableError("the hyperprior's scale ladder (tensor 'scale_ladder') is missing")
        tables = CodingTables.from_tensors(tensors, prefix="scale_tables")
        ladder = tensors["scale_ladder"].numpy().astype(np.float64)
        gaussian.check_ladder(ladder, tables)
        return tables, ladder

    # -- the deterministic hyper-synthesis ---------------------------------------------
    @torch.no_grad()
    def hyper_params(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Snapped means (float64) and ladder indices (uint8) of ``y`` from integer ``z``
        ``(C, h, w)``: CPU, float64, identical wherever it runs (see the module notes)."""
        assert self.ladder is not None
        params = {name: p.detach().to("cpu", torch.float64)
                  for name, p in self.net.hyper_dec.named_parameters()}
        z64 = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float64))[None]
        out = functional_call(self.net.hyper_dec, params, (z64,))[0]
        means, raw = out.chunk(2, dim=0)
        scales = torch.nn.functional.softplus(raw).numpy()
        return gaussian.snap_means(means.numpy()), gaussian.scale_indices(scales, self.ladder)
