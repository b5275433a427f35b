"""Make `import routing` find the package, not this folder.

tests/conftest.py puts tests/ on sys.path, where tests/routing/ (no __init__.py) would pass for
a namespace package named `routing` ahead of the editable install's finder. A regular package
anywhere on sys.path wins over a namespace one, so the project root is added.
"""

from __future__ import annotations

import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.append(_ROOT)
_found = sys.modules.get("routing")
if _found is not None and getattr(_found, "__file__", None) is None:  # the namespace impostor
    for name in [m for m in sys.modules if m == "routing" or m.startswith("routing.")]:
        del sys.modules[name]
