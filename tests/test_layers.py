"""
The dependency rule of docs/architecture.md, checked on every module's imports.
"""

from __future__ import annotations

import ast
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

PACKAGE = Path(__file__).resolve().parent.parent / "sipstack"

#: Layer of each top-level part of the package, bottom up.
LAYERS = {
    "errors": 0,
    "clock": 0,
    "config": 0,
    "hop": 0,
    "_version": 0,
    "message": 1,
    "transaction": 2,
    "dialog": 2,
    "routing": 2,
    "transport": 3,
    "stack": 4,
    "testing": 4,
    "services": 5,
    "tap": 6,
    "__main__": 6,
    "__init__": 6,
}

#: Third-party packages only the adapter layers (3 and up) may import.
IO_PACKAGES = {"twisted", "OpenSSL", "dns", "service_identity", "zope", "cryptography"}

#: Siblings in layer 2 must not import each other.
SIBLINGS = {"transaction", "dialog", "routing"}


def _part_of(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


class LayerTests(SynchronousTestCase):
    """
    Each module imports only from its own layer and the layers below it.
    """

    def test_every_part_has_a_layer(self) -> None:
        """Every module belongs to a known layer, so the rule covers it."""
        for path in PACKAGE.rglob("*.py"):
            self.assertIn(_part_of(path), LAYERS, path)

    def test_dependency_rule(self) -> None:
        """No module imports a higher layer, a layer-2 sibling, or I/O libraries below layer 3."""
        violations = []
        for path in sorted(PACKAGE.rglob("*.py")):
            part = _part_of(path)
            layer = LAYERS[part]
            for name in _imports(path):
                top = name.split(".")[0]
                if top == "sipstack":
                    target = name.split(".")[1] if "." in name else "__init__"
                    target_layer = LAYERS.get(target, 99)
                    if target_layer > layer or (part in SIBLINGS and target in SIBLINGS and target != part):
                        violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
                elif top in IO_PACKAGES and layer < 3:
                    violations.append(f"{path.relative_to(PACKAGE)} imports {name}")
        self.assertEqual(violations, [])
