"""egs/tta/autoencoderkl/run_train.sh under sh (dash on Debian): preprocess, train, latent scale; --resume and
--set values with spaces pass through; unknown arguments are refused."""

import json
import os
import subprocess

from tests.models.tta.autoencoderkl.tiny_recipe import DEBUG_CONFIG, REPO_ROOT, as_overrides, tiny_values
from utils.checkpoint import list_checkpoints

SCRIPT = "egs/tta/autoencoderkl/run_train.sh"


def run(arguments: list[str]) -> subprocess.CompletedProcess:
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["sh", SCRIPT, *arguments], cwd=REPO_ROOT, env=environment, capture_output=True,
                          text=True, timeout=300)


def test_recipe_script_trains_resumes_and_stores_the_scale_factor(tmp_path):
    values = tiny_values(tmp_path / "processed", tmp_path / "exp", **{"exp_name": "a b", "trainer.max_steps": 2})
    first = run(["--config", str(DEBUG_CONFIG), *as_overrides(values)])
    assert first.returncode == 0, first.stderr[-3000:]
    exp_dir = tmp_path / "exp" / "a b"
    assert (tmp_path / "processed" / "builtin_sfx" / "train.json").is_file()
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")] == [2]
    assert json.loads((exp_dir / "checkpoints/step_00000002/latent_scale.json").read_text())["step"] == 2

    resumed = run(["--resume", f"--config={DEBUG_CONFIG}", *as_overrides({**values, "trainer.max_steps": 3})])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stderr and "24 already done" in resumed.stdout
    assert [step for step, _ in list_checkpoints(exp_dir / "checkpoints")] == [2, 3]
    assert (exp_dir / "checkpoints/step_00000003/latent_scale.json").is_file()


def test_unknown_arguments_are_refused():
    result = run(["--resum"])
    assert result.returncode == 2 and "unknown argument '--resum'" in result.stderr
