"""Data-parallel training across sites: synchronous DDP, or a low-communication mode after DiLoCo.

Which to use
    ``sync``: standard :class:`~torch.nn.parallel.DistributedDataParallel`; gradients are all-reduced on
    every step, so the model is exactly what one process with the global batch would train. Use it within
    one site or on a LAN (sub-millisecond RTT). Across a WAN it stalls on every step: at 20–40 ms RTT it
    ran 5–10× slower than on loopback (field notes).

    ``lowcomm``: each rank takes ``sync_every`` (K) local steps with its own inner optimizer (AdamW by
    default), then the ranks all-reduce the parameter delta once — the *pseudo-gradient* ``global −
    local``, averaged — and every rank applies the same outer optimizer to the shared global parameters
    (SGD with Nesterov momentum 0.9 and lr 0.7, as in DiLoCo, Douillard et al. 2023). One exchange per K
    steps cuts communication K-fold, so use it between sites tens of milliseconds apart. ``outer_lr=1``
    with ``outer_momentum=0`` is plain periodic parameter averaging (local SGD). The last step always
    syncs, and every rank ends on the same model. By default each exchange runs while the next K steps
    compute and reaches the global parameters one outer step late, each rank starting the next window
    from its own eager estimate of that update, and pseudo-gradients cross the link as bfloat16;
    ``overlap=False`` waits for every exchange (the ranks are then identical after each one) and
    ``pseudo_gradient_dtype="float32"`` sends exact values. :mod:`stratus.training.outer` describes the
    schedule and why accuracy holds.

Both modes start from rank 0's parameters (DDP broadcasts them; lowcomm does the same), run with world
size 1 without a process group, and return :class:`TrainStats` for this rank. Distributed failures (a
lost peer, a collective past the group's timeout) become :class:`~stratus.training.cluster.DistributedError`
naming this rank, its site and its peers.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from stratus.training.cluster import Cluster, DistributedError
from stratus.training.ddp import first_line
from stratus.training.outer import OuterStep, WireDtype, ring_bytes, wire_dtype

__all__ = ["Mode", "TrainStats", "train"]

Mode = Literal["sync", "lowcomm"]
Batch = tuple[Tensor, Tensor]
LossFn = Callable[[Tensor, Tensor], Tensor]
StepHook = Callable[[int, bool], None]

_LOSS_WINDOW = 16  # final_loss averages the last steps: one batch's loss is too noisy to compare runs


@dataclass(frozen=True)
class TrainStats:
    """What one rank's training did; ``bytes_communicated_estimate`` is what this rank sent (see train),
    ``bytes_per_sync`` what it sends per exchange: one step's gradients (sync) or one outer step's
    pseudo-gradient and buffers (lowcomm); 0 with one rank."""

    steps: int
    seconds: float
    steps_per_s: float
    bytes_communicated_estimate: int
    bytes_per_sync: int
    final_loss: float
    syncs: int
    world_size: int


def train(
    model: nn.Module,
    loss_fn: LossFn,
    batches_for_rank: Iterable[Batch],
    *,
    mode: Mode,
    steps: int,
    sync_every: int = 8,
    lr: float = 1e-3,
    inner: Literal["adamw", "sgd"] = "adamw",
    outer_lr: float = 0.7,
    outer_momentum: float = 0.9,
    overlap: bool = True,
    pseudo_gradient_dtype: WireDtype = "bfloat16",
    cluster: Cluster | None = None,
    on_step: StepHook | None = None,
) -> TrainStats:
    """Train ``model`` in place for ``steps`` steps on this rank's batches ``(inputs, targets)``.

    Runs inside :func:`~stratus.training.ddp.process_group` when the world is larger than one (the size
    comes from the initialised group); ``cluster`` only names this rank in errors. ``sync_every`` is K
    for ``lowcomm`` and ignored by ``sync``, like ``overlap`` (run each exchange during the next window,
    applying it one outer step late) and ``pseudo_gradient_dtype`` (``bfloat16`` or ``float32`` on the
    wire). ``on_step(step, synced)`` is called after every step, with ``synced`` true when the ranks'
    parameters are identical at that point.

    ``bytes_communicated_estimate`` counts the bytes this rank sends in ring all-reduces (2·(N−1)/N of
    the tensor per all-reduce) and the initial broadcast, not rendezvous or barriers.
    """
    if mode not in ("sync", "lowcomm"):
        raise ValueError(f"mode must be 'sync' or 'lowcomm', got {mode!r}")
    if steps < 1 or sync_every < 1:
        raise ValueError(f"steps and sync_every must be at least 1, got {steps} and {sync_every}")
    wire_dtype(pseudo_gradient_dtype)  # a typo fails here, before any rank waits on a collective
    world_size = dist.get_world_size() if dist.is_initialized() else 1
    if cluster is not None and cluster.world_size != world_size:
        raise DistributedError(
            f"{cluster.describe()}: train() sees a world of {world_size}; call it inside "
            "process_group(cluster) so the ranks can reach each other"
        )
    try:
        trainer = _Trainer(model, loss_fn, mode, sync_every, world_size, lr, inner)
        if mode == "lowcomm":
            trainer.outer = OuterStep(
                model,
                trainer.params,
                world_size,
                lr=outer_lr,
                momentum=outer_momentum,
                overlap=overlap,
                dtype=pseudo_gradient_dtype,
            )
        return trainer.run(iter(batches_for_rank), steps, on_step)
    except RuntimeError as exc:
        if world_size == 1 or not _is_communication_error(exc):
            raise
        where = cluster.describe() if cluster else f"rank {dist.get_rank()}/{world_size}"
        peers = f" Peers: {cluster.peers()}." if cluster else ""
        raise DistributedError(
            f"{where}: a collective with its peers failed during {mode} training: {first_line(exc)}.{peers} "
            "A peer probably crashed or hung, or the link between sites broke; see the peers' logs"
        ) from exc


class _Trainer:
    """One rank's loop; the two modes differ only in how a step's update reaches the other ranks."""

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        mode: Mode,
        sync_every: int,
        world_size: int,
        lr: float,
        inner: Literal["adamw", "sgd"],
    ) -> None:
        self.model, self.loss_fn, self.mode, self.world_size = model, loss_fn, mode, world_size
        self.sync_every = 1 if mode == "sync" else sync_every
        self.params = [p for p in model.parameters() if p.requires_grad]
        if not self.params:
            raise ValueError("the model has no trainable parameters")
        self.device = self.params[0].device
        self.param_bytes = sum(p.numel() * p.element_size() for p in self.params)
        self.sent_bytes = 0.0
        self.forward: nn.Module = model
        if world_size > 1 and mode == "sync":
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self.forward = DistributedDataParallel(model, device_ids=device_ids)  # broadcasts rank 0's state
            self.sent_bytes += self.param_bytes
        elif world_size > 1:
            self._broadcast_from_rank0()
        self.optimizer = _inner_optimizer(inner, self.params, lr)
        self.outer: OuterStep | None = None  # lowcomm: set by train() once rank 0's weights are here

    def run(self, batches: Iterator[Batch], steps: int, on_step: StepHook | None) -> TrainStats:
        self.model.train()
        recent: deque[Tensor] = deque(maxlen=_LOSS_WINDOW)
        started = time.perf_counter()
        for step in range(steps):
            try:
                inputs, targets = next(batches)
            except StopIteration:
                raise ValueError(
                    f"batches_for_rank ran out after {step} batches; {steps} steps need more"
                ) from None
            inputs, targets = inputs.to(self.device), targets.to(self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.forward(inputs), targets)
            torch.autograd.backward(loss)  # sync mode: DDP all-reduces gradient buckets here
            self.optimizer.step()
            recent.append(loss.detach())
            if self.outer is None:
                synced = True
            else:
                window_ends = (step + 1) % self.sync_every == 0 or step + 1 == steps
                synced = window_ends and self.outer.sync(final=step + 1 == steps)
            if on_step is not None:
                on_step(step, synced)
        final_loss = torch.stack(list(recent)).mean()
        if self.world_size > 1:
            dist.all_reduce(final_loss)
            final_loss /= self.world_size
        seconds = time.perf_counter() - started
        if self.outer is None:  # sync: DDP all-reduced every step's gradients
            per_sync = 0.0 if self.world_size == 1 else ring_bytes(self.world_size, self.param_bytes)
            syncs, sent = steps, self.sent_bytes + steps * per_sync
        else:
            per_sync, syncs = self.outer.bytes_per_sync, self.outer.syncs
            sent = self.sent_bytes + self.outer.sent_bytes
        return TrainStats(
            steps=steps,
            seconds=seconds,
            steps_per_s=steps / seconds if seconds > 0 else float("inf"),
            bytes_communicated_estimate=int(sent),
            bytes_per_sync=int(per_sync),
            final_loss=float(final_loss),
            syncs=syncs,
            world_size=self.world_size,
        )

    @torch.no_grad()
    def _broadcast_from_rank0(self) -> None:
        """Every rank starts from rank 0's initialisation, as DDP does, so the global copies agree."""
        for tensor in [*self.model.parameters(), *self.model.buffers()]:
            dist.broadcast(tensor, src=0)
            self.sent_bytes += tensor.numel() * tensor.element_size()


def _inner_optimizer(
    kind: Literal["adamw", "sgd"], params: list[nn.Parameter], lr: float
) -> torch.optim.Optimizer:
    if kind == "adamw":
        return torch.optim.AdamW(params, lr=lr)
    if kind == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9)
    raise ValueError(f"inner optimizer must be 'adamw' or 'sgd', got {kind!r}")


def _is_communication_error(exc: RuntimeError) -> bool:
    """Torch raises a lost peer or a collective timeout as a plain RuntimeError from gloo (a DistError
    only sometimes, e.g. from NCCL or the store); the backend's name in the message tells them apart from
    a RuntimeError in the model's own code, which must surface unchanged."""
    text = str(exc).lower()
    return isinstance(exc, dist.DistError) or "gloo" in text or "nccl" in text
