"""models.tta.audioldm.concurrent_guidance: the guidance halves in two threads give the batched call's outputs."""

import threading

import pytest
import torch

from models.tta.audioldm.concurrent_guidance import ConcurrentGuidance, concurrent_guidance_applies
from models.tta.audioldm.diffusion import NoiseScheduleConfig, build_scheduler
from models.tta.audioldm.sampling import sample_latents
from tests.models.tta.audioldm.test_diffusion import guided_inputs, two_stream_denoiser


def guidance_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("guidance-half")]


@pytest.mark.parametrize("autocast_dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_halves_in_threads_equal_the_batched_guided_call(autocast_dtype):
    denoiser = two_stream_denoiser()
    latents, contexts, masks = guided_inputs()
    timestep = torch.tensor(500)
    autocast = torch.autocast("cpu", dtype=autocast_dtype, enabled=autocast_dtype is not None)
    with torch.no_grad(), autocast:
        batched = denoiser.unet(torch.cat([latents, latents]), timestep, contexts, masks).float()
        expected = denoiser.guided_prediction(latents, timestep, contexts, masks, 3.5).float()
    with ConcurrentGuidance(denoiser.unet, contexts, masks, autocast_dtype=autocast_dtype, threads_per_half=1) as halves:
        warm_up = halves.unet_outputs(latents, timestep)  # the halves one after the other, in this thread
        outputs = halves.unet_outputs(latents, timestep)
        guided = halves(latents, timestep, 3.5)
        # Both halves really ran in the pool's threads, with the requested intra-op thread count, after the
        # layers before the first context read ran once in this thread.
        seen, trunk_seen = [], []
        hook = denoiser.unet.register_forward_pre_hook(
            lambda *_: seen.append((threading.current_thread().name, torch.get_num_threads()))
        )
        trunk_hook = denoiser.unet.conv_in.register_forward_pre_hook(
            lambda *_: trunk_seen.append(threading.current_thread().name)
        )
        halves(latents, timestep, 3.5)
        hook.remove()
        trunk_hook.remove()
    assert denoiser.unet.trunk_block is not None
    assert len(seen) == 2 and all(name.startswith("guidance-half") and threads == 1 for name, threads in seen)
    assert trunk_seen == [threading.current_thread().name]
    assert outputs.shape == batched.shape == (4, 4, 8, 4)
    # fp32: summation order only; bf16: the same bf16 products in another order (outputs of size ~1).
    tolerance = 1e-5 if autocast_dtype is None else 2e-2
    assert (outputs.float() - batched).abs().max() < tolerance
    assert (warm_up.float() - batched).abs().max() < tolerance
    assert (guided.float() - expected).abs().max() < tolerance * 4.5
    assert expected.abs().max() > 0.1
    assert guidance_threads() == []


def test_odd_context_rows_are_a_clear_error():
    denoiser = two_stream_denoiser()
    _, contexts, masks = guided_inputs()
    with pytest.raises(ValueError, match=r"even number of rows \(\[negative, positive\]\), got 3"):
        ConcurrentGuidance(denoiser.unet, [context[:3] for context in contexts], [None, masks[1][:3]])


def test_an_error_in_a_half_reaches_the_caller_and_the_threads_stop():
    denoiser = two_stream_denoiser()
    latents, contexts, masks = guided_inputs()

    def fail_in_a_half(*_) -> None:
        if threading.current_thread().name.startswith("guidance-half"):
            raise ValueError("a half failed")

    hook = denoiser.unet.mid_block.register_forward_pre_hook(fail_in_a_half)
    with pytest.raises(ValueError, match="a half failed"):
        with ConcurrentGuidance(denoiser.unet, contexts, masks) as halves:
            halves(latents, torch.tensor(500), 3.5)  # the warm-up, in this thread
            assert len(guidance_threads()) == 2
            halves(latents, torch.tensor(500), 3.5)  # fails inside the two threads
    hook.remove()
    assert guidance_threads() == []
    with pytest.raises(ValueError, match="timestep must be a scalar"):
        with ConcurrentGuidance(denoiser.unet, contexts, masks) as halves:
            halves(latents, torch.tensor(500), 3.5)
            halves(latents, torch.zeros(3), 3.5)  # found by the shared layers, before the threads start
    assert guidance_threads() == []


def test_it_applies_to_guided_cpu_sampling_with_two_threads_under_passive_waiting_only(monkeypatch):
    cpu = torch.device("cpu")
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        for policy in (None, "passive", "ACTIVE"):
            if policy is None:
                monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
            else:
                monkeypatch.setenv("OMP_WAIT_POLICY", policy)
            assert concurrent_guidance_applies(cpu, 3.5, has_contexts=True) == (policy == "passive")
        monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
        assert concurrent_guidance_applies(cpu, 3.5, has_contexts=True)
        assert not concurrent_guidance_applies(cpu, 1.0, has_contexts=True)
        assert not concurrent_guidance_applies(cpu, 3.5, has_contexts=False)
        assert not concurrent_guidance_applies(torch.device("cuda"), 3.5, has_contexts=True)
        monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
        assert concurrent_guidance_applies(cpu, 3.5, has_contexts=True, any_wait_policy=True)
        assert not concurrent_guidance_applies(cpu, 1.0, has_contexts=True, any_wait_policy=True)
        torch.set_num_threads(1)
        assert not concurrent_guidance_applies(cpu, 3.5, has_contexts=True)
    finally:
        torch.set_num_threads(threads)


def test_sampling_runs_the_halves_concurrently_under_passive_and_matches_the_batched_loop(monkeypatch):
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    denoiser = two_stream_denoiser()
    latents, contexts, masks = guided_inputs()
    threads = torch.get_num_threads()
    calls = []
    hook = denoiser.unet.register_forward_pre_hook(lambda *_: calls.append(threading.current_thread().name))

    def run(concurrent_guidance):
        return sample_latents(
            denoiser, build_scheduler("ddim", NoiseScheduleConfig()), shape=tuple(latents.shape), contexts=contexts,
            context_masks=masks, guidance_scale=3.5, num_inference_steps=5, latents=latents,
            concurrent_guidance=concurrent_guidance, show_progress=False,
        )

    try:
        torch.set_num_threads(2)
        concurrent = run(None)  # the default: two threads under PASSIVE
        concurrent_calls, calls[:] = list(calls), []
        batched = run(False)
        batched_calls, calls[:] = list(calls), []
        monkeypatch.delenv("OMP_WAIT_POLICY")
        run(None)  # the default without PASSIVE: batched
        default_calls, calls[:] = list(calls), []
        run(True)  # forced: two threads whatever the policy
        forced_calls = list(calls)
        # The threads' own counts did not leak: this thread and threads started afterwards keep the caller's.
        counts = []
        fresh = threading.Thread(target=lambda: counts.append(torch.get_num_threads()))
        fresh.start()
        fresh.join()
        assert torch.get_num_threads() == 2 and counts == [2]
    finally:
        torch.set_num_threads(threads)
        hook.remove()
    # The first step warms up in the calling thread; the other four run their halves in the two threads.
    assert concurrent_calls[:2] == ["MainThread"] * 2
    assert len(concurrent_calls) == 10 and all(name.startswith("guidance-half") for name in concurrent_calls[2:])
    assert batched_calls == default_calls == ["MainThread"] * 5
    assert forced_calls[:2] == ["MainThread"] * 2 and all(name.startswith("guidance-half") for name in forced_calls[2:])
    assert guidance_threads() == []
    # As test_fast_sampling_equals_the_plain_loop_in_fp32: relative to the latents' size, summation order only.
    assert (concurrent - batched).abs().max() < 1e-5 * batched.abs().max()
