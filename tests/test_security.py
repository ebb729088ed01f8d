"""No loading path unpickles; configs are parsed with a safe loader."""

import ast
import pickle
from pathlib import Path

import numpy as np
import pytest

from gru_jax.interop import load_params
from gru_jax.train import ConfigError, load_config

PACKAGE = Path(__file__).resolve().parent.parent / "gru_jax"


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_unsafe_deserialisation_in_the_package(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            assert not any(n.split(".")[0] in ("pickle", "dill", "cloudpickle") for n in names), (
                f"{path.name}:{node.lineno} imports a pickler"
            )
    for call in _calls(tree):
        name = ast.unparse(call.func)
        keywords = {k.arg: ast.unparse(k.value) for k in call.keywords}
        where = f"{path.name}:{call.lineno} {name}"
        assert name not in ("yaml.load", "yaml.unsafe_load", "yaml.full_load"), where
        assert keywords.get("allow_pickle") != "True", where
        if name.endswith("np.load") or name.endswith("numpy.load"):
            assert keywords.get("allow_pickle") == "False", where
        if name == "torch.load":
            assert keywords.get("weights_only") == "True", where


def test_weight_file_holding_a_pickle_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.npz"
    payload = np.array([{"x": 1}], dtype=object)
    np.savez(path, __gru_jax__=np.frombuffer(b"{}", np.uint8), evil=payload)
    with pytest.raises(ValueError, match="not a valid gru_jax params file"):
        load_params(path)
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps({"w_x": 1}))
    with pytest.raises(ValueError, match="not a valid gru_jax params file"):
        load_params(raw)
    assert not marker.exists()


def test_config_with_a_python_tag_is_refused_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f"task: !!python/object/apply:os.system ['touch {marker}']\n")
    with pytest.raises(ConfigError, match="is not valid YAML"):
        load_config(config)
    assert not marker.exists()
