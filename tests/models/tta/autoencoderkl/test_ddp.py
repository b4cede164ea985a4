"""The VAE stage under two-process DDP on the CPU (accelerate launch): both processes end with the same VAE,
discriminator and optimizer states, through the discriminator's start and the adaptive weight."""

import json
import os
import socket
import subprocess
import sys

from tests.models.tta.autoencoderkl.tiny_recipe import REPO_ROOT, build_tiny_dataset, one_thread


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_processes_agree_on_every_weight(tmp_path):
    with one_thread():
        processed_dir = build_tiny_dataset(tmp_path / "processed")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),
        str(REPO_ROOT / "tests/models/tta/autoencoderkl/ddp_vae_run.py"), str(processed_dir), str(tmp_path / "run"),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    reports = [json.loads((tmp_path / "run" / f"state_rank{rank}.json").read_text()) for rank in (0, 1)]
    assert reports[0]["num_processes"] == 2 and reports[0]["step"] == 4
    assert reports[0] == reports[1], "the processes disagree"
    checkpoint = tmp_path / "run" / "exp" / "checkpoints" / "step_00000004"
    assert (checkpoint / "rng_state_rank0.pt").is_file() and (checkpoint / "rng_state_rank1.pt").is_file()
