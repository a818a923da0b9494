"""eventbridge: Argo Events-style triggers with a bundled lightweight Argo Workflows controller.

The public surface is the ``eventbridge`` command (``eventbridge.cli``), the manifest models
(``eventbridge.models``) and the protocols in ``*/base.py``; everything else is internal.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
