"""Exported loss modules: standalone (torch only) and numerically equal to the compiled loss."""

from __future__ import annotations

import importlib.util
import random
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import optuna
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from search_fakes import FakeFactory

from nlfs.errors import ConfigError
from nlfs.losses.compile import ExpressionLoss
from nlfs.losses.export import TORCH_CODE, class_name, export_source, latex_formula, write_module
from nlfs.losses.operators import BINARY_NAMES, OPERATORS, UNARY_NAMES
from nlfs.search.config import SearchConfig
from nlfs.search.workers import run_search
from nlfs.spaces import get_space
from nlfs.storage import resolve_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)

# Operands spanning tiny to huge magnitudes (p near 0 makes (p - y) / p explode), so protected
# operators, exp clamping and output clamping are all exercised.
WIDE = "div(sub(p, y), p)"
UNARY_CASES = [(f"{name}({WIDE})", 1.0) for name in UNARY_NAMES]
BINARY_CASES = [(f"{name}({WIDE}, log(p))", -1.0) for name in BINARY_NAMES]

_RUNNER = """
import importlib.util, sys, torch
data = torch.load(sys.argv[1], weights_only=True)
out = {}
for i, path in enumerate(sys.argv[3:]):
    spec = importlib.util.spec_from_file_location(f"exported_{i}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(sys.modules) >= {"torch"} and "nlfs" not in sys.modules, "imports nlfs"
    cls = [v for v in vars(module).values() if isinstance(v, type)
           and issubclass(v, torch.nn.Module) and v.__module__ == module.__name__][0]
    logits = data["logits"].clone().requires_grad_(True)
    loss = cls()(logits, data["target"])
    loss.backward()
    out[f"{i}/loss"] = loss.detach()
    out[f"{i}/none"] = cls(reduction="none")(data["logits"], data["target"]).detach()
    out[f"{i}/grad"] = logits.grad
torch.save(out, sys.argv[2])
"""


def _inputs(tmp_path):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(64, 10, generator=gen) * 12.0
    target = torch.randint(0, 10, (64,), generator=gen)
    path = tmp_path / "inputs.pt"
    torch.save({"logits": logits, "target": target}, path)
    return logits, target, path


def _compiled(expression, sign, logits, target):
    loss_fn = ExpressionLoss(expression, sign=sign)
    x = logits.clone().requires_grad_(True)
    loss = loss_fn(x, target)
    loss.backward()
    return loss.detach(), loss_fn(logits, target, reduction="none").detach(), x.grad


def _run_exported(tmp_path, paths, inputs):
    out_path = tmp_path / "out.pt"
    subprocess.run(
        [sys.executable, "-c", _RUNNER, str(inputs), str(out_path), *map(str, paths)],
        check=True,
        timeout=300,
    )
    return torch.load(out_path, weights_only=True)


def test_every_operator_has_torch_code():
    assert set(TORCH_CODE) == set(OPERATORS)


def test_exported_modules_equal_the_compiled_loss_for_every_operator_and_a_study_trial(tmp_path):
    """One fresh interpreter imports every exported file; values and gradients must match."""
    cases = list(UNARY_CASES) + list(BINARY_CASES)
    # ... and the best trial of a (fake-scored) search study, exported from storage.
    path = tmp_path / "j"
    cfg = SearchConfig(profile="fake", budget=5, strategy="random", strategy_options={})
    run_search(cfg, study_name="s", storage=str(path), evaluator_factory=FakeFactory())
    study = optuna.load_study(study_name="s", storage=resolve_storage(str(path), "s"))
    best = study.best_trial
    cases.append((best.user_attrs["expression"], best.user_attrs["sign"]))
    files = []
    for i, (expression, sign) in enumerate(cases):
        files.append(
            write_module(tmp_path / f"loss_{i}.py", expression, sign, provenance={"case": i})
        )
    logits, target, inputs = _inputs(tmp_path)
    out = _run_exported(tmp_path, files, inputs)
    for i, (expression, sign) in enumerate(cases):
        loss, per_sample, grad = _compiled(expression, sign, logits, target)
        assert torch.isfinite(loss), expression
        torch.testing.assert_close(out[f"{i}/loss"], loss, rtol=1e-6, atol=0, msg=expression)
        torch.testing.assert_close(out[f"{i}/none"], per_sample, rtol=1e-6, atol=0, msg=expression)
        torch.testing.assert_close(out[f"{i}/grad"], grad, rtol=1e-5, atol=1e-30, msg=expression)


def test_exported_source_imports_only_torch_and_documents_formula_and_provenance():
    source = export_source(
        "add(mul(y, log(p)), -1)", -1.0, provenance={"study": "demo", "trial": 7, "fitness": 0.9}
    )
    imports = re.findall(r"^(?:import|from) .*$", source, flags=re.M)
    assert imports == ["import torch", "import torch.nn.functional as F"]
    assert "eval(" not in source and "exec(" not in source
    assert "study: demo" in source and "trial: 7" in source
    assert r"\ln" in source, "the LaTeX formula is in the docstring"
    assert "(y * ln|p| + -1)" in source, "the plain formula is in the docstring"


def test_latex_format_and_bad_requests():
    assert latex_formula("mul(y, log(p))", -1) == r"-1 \cdot \sum_c y \cdot \ln\left|p\right|"
    assert class_name("my-loss_v2") == "MyLossV2" and class_name("2x") == "Loss2x"
    with pytest.raises(ConfigError, match="sign"):
        export_source("mul(y, p)", 0.5)
    with pytest.raises(ConfigError, match=r"\.py"):
        write_module("/tmp/loss.txt", "mul(y, p)", 1.0)


def _import(path: Path):
    spec = importlib.util.spec_from_file_location(f"exported_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    space=st.sampled_from(["tree", "cell"]),
    sign=st.sampled_from([1.0, -1.0]),
)
def test_exported_code_equals_the_compiled_loss_on_random_expressions(seed, space, sign):
    """Code generation follows compile_elementwise's evaluation order for any expression."""
    rng = random.Random(seed)
    expression = get_space(space).canonical(get_space(space).sample(rng))
    gen = torch.Generator().manual_seed(seed % 2**31)
    logits = torch.randn(16, 5, generator=gen) * 6.0
    target = torch.randint(0, 5, (16,), generator=gen)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_module(Path(tmp) / f"loss_{seed}.py", expression, sign)
        exported = _import(path)
        cls = getattr(exported, class_name(path.stem))
        torch.testing.assert_close(
            cls(reduction="none")(logits, target),
            ExpressionLoss(expression, sign=sign)(logits, target, reduction="none"),
            rtol=1e-6,
            atol=0,
            msg=expression,
        )
