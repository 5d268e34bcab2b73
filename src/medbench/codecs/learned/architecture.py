"""What a learned architecture declares: :class:`Architecture`, one per module of :mod:`.archs`.

An architecture is one module holding (or naming) everything that differs between
learned codecs, the way a CompressAI model is one class:

- its **name**: the codec name of ``medbench run``/``medbench codecs``, the value of
  ``medbench train --model``, the models folder ``<models>/<name>/`` and the ``arch`` of
  every ``config.json`` it writes;
- its **transforms** (``net``, a :class:`~.models.Autoencoder` whose ``arch`` is the
  name) and their default ``latent`` and ``width``;
- its **entropy model and losses** (``model``, a
  :class:`~.compression.CompressionModel`: ``forward_rd`` and ``estimate`` are what
  ``medbench train`` optimises and validates, ``freeze_tables`` what it freezes);
- its **coding** (the same class's ``compress``/``decompress``: images ⇄ bytes, and its
  ``magic``, the 4 bytes its streams start with);
- the **ladder** ``medbench run --train-missing`` trains when a dataset lacks models.

Nothing else names an architecture: the codec, the ``train --model`` choices, the
checkpoint checks, the complexity count and the missing-model ladder are all read from
the registry (:func:`medbench.codecs.learned.archs.registered`). A module added to
:mod:`medbench.codecs.learned.archs`, or an outside package declaring one in the
``medbench.architectures`` entry-point group, is a new learned codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # types only: the registry imports the classes, not this module
    from medbench.codecs.learned.compression import CompressionModel
    from medbench.codecs.learned.models import Autoencoder


@dataclass(frozen=True)
class Architecture:
    """One learned architecture (see the module notes for what each field drives).

    Parameters
    ----------
    name : str
        Codec name, ``train --model`` value and ``arch`` of its checkpoints; equal to
        ``net.arch``.
    summary : str
        One sentence: what it is and where it comes from (the codec's description).
    net : type
        The transforms: an :class:`~.models.Autoencoder` subclass built as
        ``net(latent, width)``.
    model : type
        The :class:`~.compression.CompressionModel` (sub)class that wraps ``net`` with
        its entropy model, training losses and coding (``compress``, ``decompress`` and
        the streams' ``magic``), built as ``model(net, components)``.
    latent, width : int
        Defaults of ``--latent`` and ``--width``.
    ladder : tuple of dict
        ``TrainConfig`` overrides of the models ``run --train-missing`` trains, low to
        high rate.
    warm_start : tuple of str
        Architectures whose finished models ``medbench train --init`` may start this one
        from: their weights load into the layers the two share, the layers this one adds
        start fresh (a context model started from its trained hyperprior).
    """

    name: str
    summary: str
    net: type[Autoencoder]
    model: type[CompressionModel]
    latent: int
    width: int
    ladder: tuple[dict[str, Any], ...] = field(default=())
    warm_start: tuple[str, ...] = field(default=())

    @property
    def magic(self) -> bytes:
        """The 4 bytes its streams start with (its model class's coding format)."""
        return self.model.magic

    def build(self, latent: int | None = None, width: int | None = None,
              components: int = 3) -> CompressionModel:
        """A freshly initialised model (defaults for ``latent``/``width`` left None)."""
        net = self.net(latent if latent is not None else self.latent,
                       width if width is not None else self.width)
        return self.model(net, components)

    def check(self) -> None:
        """Raise ``ValueError`` unless the declaration is consistent (a plugin's may not be)."""
        if not self.name or self.net.arch != self.name:
            raise ValueError(f"architecture {self.name!r} declares transforms of "
                             f"{self.net.arch!r}; set the net's ``arch`` to its name")
        if not isinstance(self.magic, bytes) or len(self.magic) != 4:
            raise ValueError(f"architecture {self.name!r} has magic {self.magic!r}, "
                             f"not 4 bytes")
        if self.latent < 1 or self.width < 1:
            raise ValueError(f"architecture {self.name!r} has default latent "
                             f"{self.latent} and width {self.width}; both must be >= 1")
