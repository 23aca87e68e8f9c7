"""``import mvarchive.codecs`` leaves CompressAI's point-cloud stack and scipy.stats unimported,
and what it defers is CompressAI's own code, run on first use (mvarchive/codecs/_compressai_import.py).

Each check runs in a fresh interpreter: what matters is what one import puts in ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

#: What a process sees of CompressAI's registries and deferred packages, as JSON.
SNAPSHOT = """
import json, sys
import compressai
import compressai.transforms.point as point
from compressai.registry import DATASETS, TRANSFORMS
name = lambda v: f"{getattr(v, '__module__', '?')}.{getattr(v, '__qualname__', repr(v))}"
print(json.dumps({
    "transforms": [[k, name(v)] for k, v in TRANSFORMS.items()],
    "datasets": sorted((k, name(v)) for k, v in DATASETS.items()),
    "dir_transforms": sorted(dir(compressai.transforms)),
    "dir_datasets": sorted(dir(compressai.datasets)),
    "point": sorted(point.__all__) if hasattr(point, "__all__") else sorted(dir(point)),
    "image_folder": name(compressai.datasets.ImageFolder),
    "to_dict": name(compressai.transforms.ToDict),
    "torch_geometric": getattr(sys.modules.get("torch_geometric"), "__file__", None),
}))
"""


def python(code: str) -> str:
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def plain() -> dict:
    return json.loads(python(SNAPSHOT))


def test_import_leaves_the_point_cloud_stack_and_scipy_stats_out() -> None:
    loaded = json.loads(python(
        "import json, sys, mvarchive.codecs\n"
        "print(json.dumps({m: m in sys.modules for m in ('torch_geometric', 'torch._dynamo', 'scipy.stats', 'pandas',"
        " 'compressai.transforms.point', 'compressai.datasets.pointcloud')}))"
    ))
    assert not any(loaded.values()), loaded


def test_deferred_modules_are_compressais_own(plain) -> None:
    """After ``import mvarchive.codecs`` the registries, the deferred packages and the point
    transforms are what a plain ``import compressai`` gives, in the same order."""
    deferred = json.loads(python("import mvarchive.codecs\n" + SNAPSHOT))
    assert deferred == plain
    assert len(plain["transforms"]) > 100
    assert ["ToDict", "compressai.transforms.point.to_dict.ToDict"] in plain["transforms"]
    assert deferred["torch_geometric"] == plain["torch_geometric"] is not None


def test_torch_geometric_imported_afterwards_is_the_real_package(plain) -> None:
    out = json.loads(python(
        "import json, sys, types, mvarchive.codecs\n"
        "import torch_geometric, torch_geometric.transforms as T\n"
        "from compressai.registry import TRANSFORMS\n"
        "print(json.dumps([type(torch_geometric) is types.ModuleType, torch_geometric.__file__,"
        " TRANSFORMS['NormalizeScale'] is T.NormalizeScale, len(TRANSFORMS)]))"
    ))
    assert out == [True, plain["torch_geometric"], True, len(plain["transforms"])]


def test_a_point_transform_imported_first_completes_the_registry(plain) -> None:
    """Importing one point transform before anything reads the registry (its registration
    happens while the package is half imported) still ends with the same table."""
    out = json.loads(python("import mvarchive.codecs, compressai.transforms.point.to_dict\n" + SNAPSHOT))
    assert out == plain


def test_scipy_stats_arrives_with_the_first_tables_and_they_are_the_same() -> None:
    tables = (
        "import hashlib, sys\n"
        "from compressai.entropy_models import GaussianConditional\n"
        "from compressai.models.base import get_scale_table\n"
        "before = 'scipy.stats' in sys.modules\n"
        "gc = GaussianConditional(None); gc.update_scale_table(get_scale_table())\n"
        "digest = hashlib.sha256(gc._quantized_cdf.numpy().tobytes() + gc._offset.numpy().tobytes()).hexdigest()\n"
        "print(before, 'scipy.stats' in sys.modules, type(sys.modules['scipy.stats']).__name__, digest)\n"
    )
    ours = python("import mvarchive.codecs\n" + tables).split()
    plain = python("import compressai\n" + tables).split()
    assert ours[:3] == ["False", "True", "module"]
    assert plain[:2] == ["True", "True"] and ours[3] == plain[3]


@pytest.mark.parametrize("first", [
    "import torch_geometric",
    "import importlib.metadata as m; v = m.version; m.version = lambda n: '0.0' if n == 'compressai' else v(n)",
])
def test_plain_import_when_torch_geometric_is_loaded_or_the_version_differs(first: str) -> None:
    out = python(first + "\nimport sys, mvarchive.codecs\n"
                 "print(type(sys.modules['compressai.datasets']).__name__, 'scipy.stats' in sys.modules)")
    assert out.split() == ["module", "True"]
