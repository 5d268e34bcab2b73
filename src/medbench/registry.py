"""Entry-point registries shared by codecs and datasets.

Built-in codecs and datasets register through the same entry-point groups as outside
plugins (``medbench.codecs``, ``medbench.datasets``), so a separately installed package
adds one by declaring an entry point. A plugin that fails to import is logged and skipped;
two plugins claiming one name is an error naming both.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points

from medbench.errors import MedbenchError, UnknownNameError

log = logging.getLogger(__name__)


class DuplicateNameError(MedbenchError):
    """Two installed packages register the same name in one entry-point group."""


@dataclass
class Registry:
    """Name → loaded object for one entry-point group, loaded once on first use.

    Parameters
    ----------
    group
        The entry-point group (``medbench.codecs``, ``medbench.datasets``).
    kind
        What the group holds, for messages (``codec``, ``dataset``).

    Attributes
    ----------
    broken
        Name → ``"ExceptionType: message"`` of each plugin that failed to load.
    """

    group: str
    kind: str
    #: Objects registered besides the entry points (name → object), loaded with them; a
    #: name both give must be the same object.
    extra: Callable[[], dict[str, object]] | None = None
    _items: dict[str, object] | None = None
    broken: dict[str, str] = field(default_factory=dict)

    def _entry_points(self) -> list[EntryPoint]:
        return list(entry_points(group=self.group))

    def load(self) -> dict[str, object]:
        """Load every entry point of the group (once; later calls reuse the result).

        Returns
        -------
        dict
            Name → loaded object, sorted by name; plugins that failed to import are left
            out (logged, and kept in :attr:`broken`).

        Raises
        ------
        DuplicateNameError
            Two different entry points claim one name.
        """
        if self._items is not None:
            return self._items
        items: dict[str, object] = {}
        origins: dict[str, str] = {}
        for ep in self._entry_points():
            origin = f"{ep.value}"
            if ep.name in items:
                if origins[ep.name] == origin:
                    continue  # same package seen twice on sys.path (editable installs)
                raise DuplicateNameError(
                    f"{self.kind} name {ep.name!r} is registered twice: by {origins[ep.name]} "
                    f"and by {origin}; uninstall one of the two packages"
                )
            try:
                items[ep.name] = ep.load()
            except Exception as exc:  # a broken plugin must not break the CLI
                self.broken[ep.name] = f"{type(exc).__name__}: {exc}"
                log.warning("%s plugin %r (%s) failed to load: %s", self.kind, ep.name, origin, exc)
                continue
            origins[ep.name] = origin
        for name, obj in self._extra().items():
            if name in items and items[name] is not obj:
                raise DuplicateNameError(
                    f"{self.kind} name {name!r} is registered twice: by {origins[name]} "
                    f"and by {getattr(obj, '__module__', '?')}; uninstall one of the two"
                )
            items[name] = obj
        self._items = dict(sorted(items.items()))
        return self._items

    def check_names(self, names: list[str]) -> None:
        """Refuse names that no installed entry point declares, without importing any
        plugin (so a mistyped name on the command line fails at once).

        Parameters
        ----------
        names
            Names as typed; a ``name:argument`` spec is checked by its ``name``.

        Raises
        ------
        UnknownNameError
            For the first unknown name; the message lists the declared names.
        """
        declared = {ep.name for ep in self._entry_points()} | set(self._items or {})
        if any(n.partition(":")[0] not in declared for n in names) and self._items is None:
            declared |= set(self._extra())  # not loaded yet: the extras may hold it
        for name in names:
            if name.partition(":")[0] not in declared:
                raise UnknownNameError(self.kind, name, sorted(declared))

    def _extra(self) -> dict[str, object]:
        """The extra objects; a failure to load them is reported like a broken plugin."""
        if self.extra is None:
            return {}
        try:
            return self.extra()
        except DuplicateNameError:
            raise
        except Exception as exc:  # a broken extra source must not break the CLI
            self.broken["<extra>"] = f"{type(exc).__name__}: {exc}"
            log.warning("extra %ss failed to load: %s", self.kind, exc)
            return {}

    def names(self) -> list[str]:
        """The loaded names, sorted.

        Returns
        -------
        list of str
            Every name that loaded, as typed on the command line.
        """
        return list(self.load())

    def get(self, name: str) -> object:
        """The object registered under ``name``.

        Parameters
        ----------
        name
            A registered name, as typed on the command line.

        Returns
        -------
        object
            The loaded entry point (a codec or dataset class, for the built-in groups).

        Raises
        ------
        UnknownNameError
            No plugin registers ``name``; the message lists the known names.
        """
        items = self.load()
        if name not in items:
            raise UnknownNameError(self.kind, name, list(items))
        return items[name]

    def reset(self) -> None:
        """Forget loaded entries (tests use this after changing what is installed)."""
        self._items = None
        self.broken = {}
