"""Exports for TF Serving (SavedModel), devices (TFLite / LiteRT) and ONNX, and runners that load them back.

The package is callable: `zoo.export(run, format="all")` is `zoo.export.api.export`.
"""

import sys
import types

from zoo.export.api import export
from zoo.export.report import describe

__all__ = ["describe", "export"]


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return export(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
