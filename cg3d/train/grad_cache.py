"""Gradient caching: a contrastive loss over a batch too large to back-propagate at once, with the
gradients of the whole batch (GradCache, Gao et al., "Scaling Deep Contrastive Learning Batch
Size under Memory Limited Setup", 2021).

Plain gradient accumulation sums micro-batch gradients, but each micro-batch's loss sees only its
own negatives, so the contrastive batch shrinks. Here:

1. every chunk is embedded without a graph, and the RNG state before each is kept;
2. the loss is computed over all chunks' embeddings at once (and, through the loss's gather,
   over every rank's), and back-propagated to the embeddings only;
3. each chunk is embedded again, with a graph, from the same RNG state (dropout and drop-path
   draw the same masks), and the cached embedding gradients are back-propagated through the
   encoder one chunk at a time.

Memory is one chunk's graph plus the embeddings; the cost is one extra forward. Layers that
depend on the whole batch (BatchNorm in train mode) see one chunk's statistics, as they see one
GPU's under DDP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class _RngState:
    cpu: torch.Tensor
    cuda: torch.Tensor | None

    @classmethod
    def capture(cls, device: torch.device) -> _RngState:
        cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
        return cls(torch.get_rng_state(), cuda)

    @contextmanager
    def replay(self, device: torch.device) -> Iterator[None]:
        """Run a block from this state; the state from before the block is restored after it."""
        with torch.random.fork_rng(devices=[device] if self.cuda is not None else []):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, device)
            yield


class GradCache:
    """The embeddings of ``chunks`` (step 1), to compute the loss on, then :meth:`backward`."""

    def __init__(self, embed: Callable[[object], torch.Tensor], chunks: Sequence[object], device: torch.device):
        self.embed, self.chunks, self.device = embed, list(chunks), device
        self.states: list[_RngState] = []
        parts = []
        with torch.no_grad():
            for chunk in self.chunks:
                self.states.append(_RngState.capture(device))
                parts.append(embed(chunk))
        self.sizes = [len(part) for part in parts]
        self.embeddings = torch.cat(parts).requires_grad_()

    def backward(self, loss: torch.Tensor, no_sync: Callable[[], AbstractContextManager] = nullcontext) -> None:
        """Steps 2 and 3: accumulate into the encoder's ``.grad`` what back-propagating ``loss``
        through one forward of the whole batch would. ``no_sync`` (DDP's) holds gradient
        synchronisation back until the last chunk."""
        (gradient,) = torch.autograd.grad(loss, self.embeddings)
        last = len(self.chunks) - 1
        for index, (chunk, state, part) in enumerate(zip(self.chunks, self.states, gradient.split(self.sizes))):
            with state.replay(self.device), (no_sync() if index < last else nullcontext()):
                self.embed(chunk).backward(part)
