"""Qian & Han's encoders and discriminator (§3.2, §4.3).

- :class:`SpecCNN`: ``layers`` x (3x3 conv, padding 1, ReLU, 2x2 max-pool), ``channels``
  each, on 128 x 128 spectrogram segments; the flattened map (8 x 8 x 8 = 512) is the audio
  embedding. Input ``(B, S, H, W)`` segments with a ``(B, S)`` mask: the embedding is the
  mean over valid segments (``evaluate.qian_han.segments``: all of an utterance's ~1 s
  segments, or S = 1, the first).
- :class:`AttentionLSTM`: unidirectional LSTM over word vectors ``(B, T, D)``; attention
  scores are the dot products of each output with the last hidden state (the authors'
  code), softmax over valid words; the embedding is the weighted sum.
- :class:`Discriminator`: one hidden layer on the concatenated (audio, text) pair -> a real
  score d(e_a, e_t).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .common import masked_mean, sync_free
from .config import LSTMConfig, SpecCNNConfig


class SpecCNN(nn.Module):
    def __init__(self, height: int, width: int, cfg: SpecCNNConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or SpecCNNConfig()
        scale = 2**cfg.layers
        if height % scale or width % scale:
            raise ValueError(
                f"spectrogram segments of {height} x {width} do not halve {cfg.layers} times"
            )
        layers: list[nn.Module] = []
        cin = 1
        for _ in range(cfg.layers):
            layers += [nn.Conv2d(cin, cfg.channels, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2, 2)]
            cin = cfg.channels
        # channels-last convolutions with few channels run several times faster on CPU
        self.convs = nn.Sequential(*layers).to(memory_format=torch.channels_last)
        self.out_dim = cfg.channels * (height // scale) * (width // scale)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > 1 and not sync_free(x):
            return self.valid_segments(x, mask)
        return self.all_segments(x, mask)

    def valid_segments(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The convolutions on the valid segments only (CPU: padding costs nothing). The
        selection reads the mask on the host, which would stall a GPU at every step."""
        b, s = x.shape[:2]
        keep = mask.reshape(-1)
        out = x.new_zeros((b * s, self.out_dim), dtype=torch.float32)
        if keep.any():
            out[keep] = self._embed(x.reshape(b * s, *x.shape[2:])[keep]).float()
        return masked_mean(out.reshape(b, s, -1), mask)

    def all_segments(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Every segment through the convolutions (fixed shapes, no host sync: CUDA), the
        padding's outputs masked out of the mean."""
        b, s = x.shape[:2]
        return masked_mean(self._embed(x.reshape(b * s, *x.shape[2:])).reshape(b, s, -1), mask)

    def _embed(self, x: torch.Tensor) -> torch.Tensor:
        """(N, H, W) segments -> (N, out_dim)."""
        h = x.float().unsqueeze(1).contiguous(memory_format=torch.channels_last)
        return self.convs(h).contiguous().reshape(len(x), -1)  # (channel, row, column) order


class AttentionLSTM(nn.Module):
    def __init__(self, in_dim: int, cfg: LSTMConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or LSTMConfig()
        self.lstm = nn.LSTM(
            in_dim,
            cfg.hidden,
            cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.out_dim = cfg.hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        # Valid steps are moved to the front so that each clip's words come in order.
        order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
        xs = torch.gather(x.float(), 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        if sync_free(x):
            return self.padded(xs, mask)
        return self.packed(xs, mask)

    def packed(self, xs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The LSTM over packed sequences (CPU: no work on padding). Packing needs the
        lengths on the host, which would stall a GPU at every step."""
        lengths = mask.sum(1).clamp(min=1).cpu()
        packed = pack_padded_sequence(xs, lengths, batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=xs.shape[1])
        steps = torch.arange(xs.shape[1], device=xs.device)
        valid = steps[None, :] < lengths.to(xs.device)[:, None]
        scores = torch.bmm(out, h_n[-1].unsqueeze(2)).squeeze(2)
        weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=1)
        return torch.bmm(out.transpose(1, 2), weights.unsqueeze(2)).squeeze(2)

    def padded(self, xs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The LSTM over the padded batch (fixed shapes, no host sync: CUDA). The LSTM is
        causal, so the outputs at valid steps are the packed run's; the top layer's output
        at the last valid step is its final hidden state."""
        steps = xs.shape[1]
        lengths = mask.sum(1).clamp(min=1)
        out, _ = self.lstm(xs)
        valid = torch.arange(steps, device=xs.device)[None, :] < lengths[:, None]
        out = out * valid.unsqueeze(-1).to(out.dtype)  # zeros past the end, as unpacking gives
        last = out.gather(1, (lengths - 1).view(-1, 1, 1).expand(-1, 1, out.shape[-1]))
        scores = torch.bmm(out, last.transpose(1, 2)).squeeze(2)
        weights = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=1)
        return torch.bmm(out.transpose(1, 2), weights.unsqueeze(2).to(out.dtype)).squeeze(2)


class Discriminator(nn.Module):
    def __init__(self, audio_dim: int, text_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(audio_dim + text_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1)
        )

    def forward(self, audio: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Scores of every pair: (Ba, Da), (Bt, Dt) -> (Ba, Bt); [i, j] = d(audio_i, text_j)."""
        a = audio.unsqueeze(1).expand(-1, text.shape[0], -1)
        t = text.unsqueeze(0).expand(audio.shape[0], -1, -1)
        return self.net(torch.cat([a, t], dim=-1)).squeeze(-1)
