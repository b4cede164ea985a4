"""Set-level metrics for generated audio: Fréchet distances, KL between paired posteriors, Inception Score, and
the text–audio (CLAP-style) score.

Every function takes embeddings or classifier outputs already computed by a backbone (`evaluation.backbones`),
as numpy arrays or torch tensors, and returns Python floats computed in float64. Argument order is always
(reference, generated): reference = real clips (or the prompt's text), generated = the model's clips.
"""

from collections.abc import Sequence

import numpy as np
import scipy.linalg
import torch

ArrayLike = np.ndarray | torch.Tensor

# Added inside the log of the generated posteriors, as in AudioLDM's evaluation (audioldm_eval), so a zero
# probability gives a large finite penalty instead of inf; keeps our KL numbers comparable with published ones.
KL_EPS = 1e-6
# Diagonal jitter tried when the covariance product is singular (pytorch-fid's fallback).
FRECHET_JITTER = 1e-6
# Largest imaginary part on the diagonal of sqrtm tolerated as round-off (pytorch-fid's tolerance).
FRECHET_IMAGINARY_ATOL = 1e-3


def _float64(values: ArrayLike) -> np.ndarray:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().double().numpy()
    return np.asarray(values, dtype=np.float64)


def gaussian_statistics(embeddings: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D) of embeddings (N, D), in float64."""
    embeddings = _float64(embeddings)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be (N, D), got shape {embeddings.shape}")
    if embeddings.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 embeddings, got {embeddings.shape[0]}")
    return embeddings.mean(axis=0), np.cov(embeddings, rowvar=False).reshape(embeddings.shape[1], -1)


def frechet_distance_from_statistics(
    mean_1: np.ndarray, covariance_1: np.ndarray, mean_2: np.ndarray, covariance_2: np.ndarray
) -> float:
    """Fréchet (2-Wasserstein) distance between N(mean_1, covariance_1) and N(mean_2, covariance_2).

    ||mu_1 - mu_2||^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^(1/2)) (Dowson & Landau 1982; Heusel et al. 2017, FID).
    Numerics as in the standard FID code: if sqrtm of the product is not finite (near-singular covariances,
    e.g. fewer embeddings than dimensions) the diagonals get a 1e-6 jitter; a small imaginary part from
    round-off is dropped, a large one (> 1e-3 on the diagonal) is an error.
    """
    mean_1, mean_2 = np.atleast_1d(_float64(mean_1)), np.atleast_1d(_float64(mean_2))
    covariance_1, covariance_2 = np.atleast_2d(_float64(covariance_1)), np.atleast_2d(_float64(covariance_2))
    if mean_1.shape != mean_2.shape or covariance_1.shape != covariance_2.shape:
        raise ValueError(
            f"statistics differ in dimension: means {mean_1.shape} vs {mean_2.shape}, "
            f"covariances {covariance_1.shape} vs {covariance_2.shape}"
        )
    product_root = scipy.linalg.sqrtm(covariance_1 @ covariance_2)
    if not np.isfinite(product_root).all():
        jitter = np.eye(covariance_1.shape[0]) * FRECHET_JITTER
        product_root = scipy.linalg.sqrtm((covariance_1 + jitter) @ (covariance_2 + jitter))
    if np.iscomplexobj(product_root):
        largest_imaginary = np.abs(np.diagonal(product_root).imag).max()
        if largest_imaginary > FRECHET_IMAGINARY_ATOL:
            raise ValueError(
                f"sqrtm of the covariance product has an imaginary diagonal part of {largest_imaginary:.3g}; "
                "the covariances are too ill-conditioned (use more embeddings than dimensions)"
            )
        product_root = product_root.real
    difference = mean_1 - mean_2
    distance = difference @ difference + np.trace(covariance_1) + np.trace(covariance_2)
    return float(distance - 2.0 * np.trace(product_root))


def frechet_distance(reference_embeddings: ArrayLike, generated_embeddings: ArrayLike) -> float:
    """FD between two sets of clip embeddings (N, D) and (M, D), one vector per clip.

    This is the "FD" of AudioLDM / Tango (PANNs CNN14 2048-d clip embeddings there; any backbone's clip
    embeddings here). Lower is better; 0 for identical sets.
    """
    return frechet_distance_from_statistics(
        *gaussian_statistics(reference_embeddings), *gaussian_statistics(generated_embeddings)
    )


def _stack_frames(frame_embeddings: ArrayLike | Sequence[ArrayLike]) -> np.ndarray:
    if isinstance(frame_embeddings, (np.ndarray, torch.Tensor)):
        frames = _float64(frame_embeddings)
        if frames.ndim != 3:
            raise ValueError(f"frame embeddings must be (N, T, D) or a list of (T_i, D), got shape {frames.shape}")
        return frames.reshape(-1, frames.shape[-1])
    clips = [_float64(clip) for clip in frame_embeddings]
    if not clips or any(clip.ndim != 2 for clip in clips):
        raise ValueError("frame embeddings must be a non-empty list of (T_i, D) arrays")
    return np.concatenate(clips, axis=0)


def frechet_audio_distance(
    reference_frames: ArrayLike | Sequence[ArrayLike], generated_frames: ArrayLike | Sequence[ArrayLike]
) -> float:
    """FAD: the Fréchet distance between the pooled frame embeddings of two clip sets.

    Kilgour et al. 2019, "Fréchet Audio Distance": every frame embedding of every clip (VGGish: one per 0.96 s)
    is one sample of the set's Gaussian. Inputs are (N, T, D) or lists of per-clip (T_i, D) arrays (clips may
    differ in length). The same formula as `frechet_distance`, on frames instead of clips.
    """
    return frechet_distance(_stack_frames(reference_frames), _stack_frames(generated_frames))


def paired_kl_divergence(reference_probabilities: ArrayLike, generated_probabilities: ArrayLike) -> float:
    """Mean over pairs of sum_k p_k log(p_k / (q_k + 1e-6)); p = reference (N, K), q = generated (N, K).

    KL(p || q) per pair when rows are distributions (softmax); with independent per-class (sigmoid)
    probabilities this is AudioLDM's "KL_Sigmoid" formula, which keeps only the positive-class terms.
    Terms with p_k = 0 count as 0.
    """
    p = torch.as_tensor(_float64(reference_probabilities))
    q = torch.as_tensor(_float64(generated_probabilities))
    if p.ndim != 2 or p.shape != q.shape:
        raise ValueError(f"posteriors must be paired (N, K) arrays, got {tuple(p.shape)} and {tuple(q.shape)}")
    per_pair = (torch.xlogy(p, p) - p * torch.log(q + KL_EPS)).sum(dim=1)
    return float(per_pair.mean())


def kl_softmax(reference_logits: ArrayLike, generated_logits: ArrayLike) -> float:
    """AudioLDM's "KL": paired KL(softmax(reference) || softmax(generated)) over classifier logits (N, K)."""
    return paired_kl_divergence(
        torch.softmax(torch.as_tensor(_float64(reference_logits)), dim=1),
        torch.softmax(torch.as_tensor(_float64(generated_logits)), dim=1),
    )


def kl_sigmoid(reference_logits: ArrayLike, generated_logits: ArrayLike) -> float:
    """AudioLDM's "KL_Sigmoid" for multi-label taggers: `paired_kl_divergence` of sigmoid(logits) (N, K)."""
    return paired_kl_divergence(
        torch.sigmoid(torch.as_tensor(_float64(reference_logits))),
        torch.sigmoid(torch.as_tensor(_float64(generated_logits))),
    )


def inception_score(
    probabilities: ArrayLike, *, splits: int = 10, shuffle_seed: int | None = None
) -> tuple[float, float]:
    """Inception Score of generated clips from their class posteriors p(y|x) (N, K), rows summing to 1.

    Salimans et al. 2016: exp(E_x KL(p(y|x) || p(y))), p(y) the mean posterior of the split; computed on
    `splits` contiguous chunks (after an optional seeded shuffle, as audioldm_eval does); returns (mean, std)
    over splits. Between 1 (every clip alike, or every clip uncertain) and K (confident and diverse).
    Pass softmax(logits) for a softmax classifier.
    """
    p = torch.as_tensor(_float64(probabilities))
    if p.ndim != 2:
        raise ValueError(f"probabilities must be (N, K), got shape {tuple(p.shape)}")
    count = p.shape[0]
    if not 1 <= splits <= count:
        raise ValueError(f"splits must be between 1 and the number of clips ({count}), got {splits}")
    if shuffle_seed is not None:
        p = p[torch.from_numpy(np.random.RandomState(shuffle_seed).permutation(count))]
    scores = []
    for index in range(splits):
        chunk = p[index * count // splits : (index + 1) * count // splits]
        marginal = chunk.mean(dim=0, keepdim=True)
        kl = (torch.xlogy(chunk, chunk) - torch.xlogy(chunk, marginal)).sum(dim=1)
        scores.append(float(torch.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def text_audio_score(text_embeddings: ArrayLike, audio_embeddings: ArrayLike, *, scale: float = 1.0) -> float:
    """Mean cosine similarity of paired text and audio embeddings (N, D), times `scale`.

    With a CLAP model and scale=100 this is the usual "CLAP score" (Hessel et al. 2021's CLIPScore applied to
    audio, without its clipping at 0, so a mismatched set can score below 0).
    """
    text = torch.as_tensor(_float64(text_embeddings))
    audio = torch.as_tensor(_float64(audio_embeddings))
    if text.ndim != 2 or text.shape != audio.shape:
        raise ValueError(f"embeddings must be paired (N, D) arrays, got {tuple(text.shape)} and {tuple(audio.shape)}")
    cosine = torch.nn.functional.cosine_similarity(text, audio, dim=1)
    return float(cosine.mean()) * scale
