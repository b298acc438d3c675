"""A command's data variables, from a MAT-file or handed over in memory (no torch: the
options name this type, and the command line builds its options without torch)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .. import matfile
from ..errors import Mat2GradError

__all__ = ["IN_MEMORY", "Variables", "read_variables"]

#: How messages name data given in memory rather than in a MAT-file.
IN_MEMORY = "the data passed in"


@dataclass(frozen=True)
class Variables:
    """A command's data variables: those of a MAT-file, or arrays given in memory.

    Attributes:
        values: variable name -> value, in MATLAB's layout (a cell is a 2-D object array).
        source: the MAT-file they come from, which messages name first; ``""`` for arrays
            in memory, which messages name by the variable alone.
        quote: messages quote variable names (``'X' has 1 rows ...``), as a file's are;
            ``False`` for an argument named after its parameter (``X has 1 rows ...``).
    """

    values: Mapping[str, Any]
    source: str = ""
    quote: bool = True

    def what(self, name: str) -> str:
        """How messages name the variable ``name``."""
        label = f"'{name}'" if self.quote else name
        return f"{self.source}: {label}" if self.source else label

    def resolve(self, name: str) -> Any:
        """The value at a MATLAB-style path (``X``, ``S.x``, ``C{2}``)."""
        return matfile.resolve(self.values, name, source=self.source)

    def select(self, name: str | None, **how: Any) -> tuple[str, Any]:
        """:func:`mat2grad.matfile.select_variable` on these variables."""
        source = self.source or (IN_MEMORY if name is None else "")
        return matfile.select_variable(self.values, name, source=source, **how)


def read_variables(opts: Any, path: str | None = None) -> Variables:
    """The variables of the MAT-file ``path`` (default: the options' ``inputs``), or the
    variables the options carry in memory (``data``) when no file is named."""
    if path is None and opts.data is not None:
        return opts.data
    path = path or opts.inputs
    if not path:
        raise Mat2GradError(
            f"{opts.file}: '{opts.command}' needs inputs: give them (X) or name their "
            "MAT-file (--inputs DATA.mat)"
        )
    return Variables(matfile.read_mat(path), str(path))
