"""Import Great Expectations without loading what its import pulls in and our suites never run.

`import great_expectations` registers every core expectation, and one of them
(`expect_column_kl_divergence_to_be_less_than`) imports `altair` and `scipy.stats` at module
level. Those two are about 1.5 s of the 4-6 s of CPU that importing GX costs, and every build
that validates a partition pays it. The suites here use per-row and uniqueness expectations
only (`expectations.py` refuses the rest), which never touch either.

So GX is imported with those packages' pure-Python modules made lazy (the standard library's
`importlib.util.LazyLoader`): the module object exists and is executed on its first attribute
access. A suite that ever used scipy or altair would load them then, at the same cost as
today; nothing is stubbed. Only the import of GX itself is affected: the finder is removed
once it is done, and any import of these packages later is an ordinary one.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

# Imported by GX's own import, used by none of the expectations our suites may hold.
DEFERRED = frozenset({"scipy", "altair"})


class _DeferringFinder(importlib.abc.MetaPathFinder):
    """Finds the modules of `roots` as the path finder does, with their loader made lazy."""

    def __init__(self, roots: frozenset[str]) -> None:
        self._roots = roots

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] not in self._roots:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        # Extension modules make their module object themselves: LazyLoader cannot wrap them.
        if spec is not None and isinstance(spec.loader, importlib.machinery.SourceFileLoader):
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


@contextlib.contextmanager
def _deferring(roots: frozenset[str]) -> Iterator[None]:
    finder = _DeferringFinder(roots)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)


def import_great_expectations() -> ModuleType:
    """The `great_expectations` module, imported (once per process) with `DEFERRED` lazy."""
    module = sys.modules.get("great_expectations")
    if module is not None:
        return module
    with _deferring(DEFERRED):
        import great_expectations
    return great_expectations
