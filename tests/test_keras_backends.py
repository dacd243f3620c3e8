"""Same weights, same input, same output on JAX, TensorFlow and PyTorch: torch's SpinalLinear writes its
weights (through from_torch), an input and its own output to a file; every backend's environment checks it.

make test builds .venv-jax and .venv-tf (no torch there) and sets SPINALNET_REQUIRE_BACKENDS=1, so a
missing environment fails instead of skipping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

keras = pytest.importorskip("keras")
torch = pytest.importorskip("torch")

from spinalnet import SpinalLinear  # noqa: E402
from spinalnet.keras import from_torch  # noqa: E402

ROOT = Path(__file__).parent.parent
PYTHONS = {"jax": ROOT / ".venv-jax" / "bin" / "python", "tensorflow": ROOT / ".venv-tf" / "bin" / "python",
           "torch": Path(sys.executable)}
CHECK = """
import json, sys
import numpy as np
import keras
from spinalnet.keras import SpinalDense
data = np.load(sys.argv[1])
assert keras.backend.backend() == sys.argv[2], keras.backend.backend()
assert sys.argv[2] == "torch" or "torch" not in sys.modules
dense = SpinalDense.from_config(json.loads(str(data["config"])))
dense.build((None, data["x"].shape[1]))
dense.set_weights([data[f"w{i}"] for i in range(len(dense.weights))])
got = np.asarray(keras.ops.convert_to_numpy(dense(data["x"], training=False)))
print(float(np.abs(got - data["expected"]).max()))
"""


@pytest.fixture(scope="module")
def saved_case(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    layer = SpinalLinear(13, 4, layer_width=6, num_layers=5, num_splits=3, activation="gelu", batch_norm=True)
    layer.train()(torch.randn(32, 13) * 2 + 1)  # moving statistics that are not 0 and 1
    layer.eval()
    x = np.random.default_rng(0).standard_normal((7, 13)).astype("float32")
    dense = from_torch(layer)
    path = tmp_path_factory.mktemp("backends") / "case.npz"
    np.savez(path, x=x, expected=layer(torch.from_numpy(x)).detach().numpy(), config=json.dumps(dense.get_config()),
             **{f"w{i}": w for i, w in enumerate(dense.get_weights())})
    return path


def run_on(backend: str, code: str, *args: str, cwd: Path | None = None) -> str:
    """The output of ``code`` run by ``backend``'s own environment (this repository's source first on its path);
    skipped where that environment is missing, and failed then under make test."""
    python = PYTHONS[backend]
    if not python.exists():
        if os.environ.get("SPINALNET_REQUIRE_BACKENDS") == "1":
            pytest.fail(f"{python} is missing: make test builds it")
        pytest.skip(f"no {backend} environment at {python} (make test builds it)")
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": str(ROOT / "src")}
    done = subprocess.run([str(python), "-c", code, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("backend", ["torch", "jax", "tensorflow"])
@pytest.mark.slow
def test_every_backend_computes_torchs_output(backend, saved_case):
    assert float(run_on(backend, CHECK, str(saved_case), backend).strip().splitlines()[-1]) < 1e-5
