"""AudioLDM 2 projection of the two text encoders' outputs into GPT-2's input space.

Each stream (the CLAP text embedding and the Flan-T5 encoder states) gets its own linear map to the language
model's width and its own learned start and end vectors; the two bracketed sequences are concatenated into the
prompt GPT-2 continues. Liu et al. 2024, "AudioLDM 2: Learning Holistic Audio Generation with Self-supervised
Pretraining", Sec. 3.
"""

import torch
from torch import nn


class AudioLDM2Projection(nn.Module):
    """Project CLAP (B, Lc, clap_dim) and T5 (B, Lt, t5_dim) into one (B, Lc + Lt + 4, language_model_dim) sequence.

    Layout: ``[clap_start, clap..., clap_end, t5_start, t5..., t5_end]``; the mask gets ones for the four learned
    vectors in the same places, so T5 padding stays in the middle of the sequence, before ``t5_end`` (as in the
    public checkpoints, where GPT-2 was trained on exactly this layout).
    """

    def __init__(self, *, clap_dim: int = 512, t5_dim: int = 1024, language_model_dim: int = 768) -> None:
        super().__init__()
        self.clap_projection = nn.Linear(clap_dim, language_model_dim)
        self.t5_projection = nn.Linear(t5_dim, language_model_dim)
        # Learned start/end vectors, initialised to ones as in the original model.
        self.clap_start = nn.Parameter(torch.ones(language_model_dim))
        self.clap_end = nn.Parameter(torch.ones(language_model_dim))
        self.t5_start = nn.Parameter(torch.ones(language_model_dim))
        self.t5_end = nn.Parameter(torch.ones(language_model_dim))

    @staticmethod
    def _bracket(
        sequence: torch.Tensor, mask: torch.Tensor, start: nn.Parameter, end: nn.Parameter
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D), (B, L) -> (B, L + 2, D), (B, L + 2) with ``start`` / ``end`` (always attended) around them."""
        batch_size, _, width = sequence.shape
        start = start.to(sequence.dtype).expand(batch_size, 1, width)
        end = end.to(sequence.dtype).expand(batch_size, 1, width)
        always_on = mask.new_ones(batch_size, 1)
        return torch.cat([start, sequence, end], dim=1), torch.cat([always_on, mask, always_on], dim=1)

    def forward(
        self,
        clap_embeddings: torch.Tensor,
        clap_mask: torch.Tensor,
        t5_states: torch.Tensor,
        t5_mask: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the GPT-2 prompt (B, Lc + Lt + 4, language_model_dim) and its mask (B, Lc + Lt + 4).

        ``clap_embeddings`` (B, Lc, clap_dim) with ``clap_mask`` (B, Lc) (Lc = 1 for the pooled CLAP text
        embedding), ``t5_states`` (B, Lt, t5_dim) with the tokenizer mask ``t5_mask`` (B, Lt); masks hold 1 for real
        positions and 0 for padding, and keep their dtype.
        """
        clap, clap_mask = self._bracket(
            self.clap_projection(clap_embeddings), clap_mask, self.clap_start, self.clap_end
        )
        t5, t5_mask = self._bracket(self.t5_projection(t5_states), t5_mask, self.t5_start, self.t5_end)
        return torch.cat([clap, t5], dim=1), torch.cat([clap_mask, t5_mask], dim=1)
