"""Package attributes imported on first use: `import striate` stays cheap and a command loads
only the modules it runs (`striate spectra` never imports the report or the diff).

    __getattr__ = exports(__name__, {"scan": "striate.scan.pipeline:scan"})
"""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping
from typing import Any


def exports(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package`: each name -> "module:attribute", or "module" for
    the module itself; the value is kept on the package after its first use."""

    def __getattr__(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attribute = table[name].partition(":")
        value = importlib.import_module(module)
        if attribute:
            value = getattr(value, attribute)
        setattr(sys.modules[package], name, value)
        return value

    return __getattr__


class _CallablePackage(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return getattr(self, self.__name__.rpartition(".")[2])(*args, **kwargs)


def callable_package(package: str) -> None:
    """Calling the package `striate.scan` calls its function `scan`: `striate.scan(model)`.
    (An attribute of `striate` named like its subpackage cannot stay the function: importing
    any module of the subpackage sets the attribute to the subpackage.)"""
    sys.modules[package].__class__ = _CallablePackage
