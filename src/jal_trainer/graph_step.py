"""A CUDA-graph training step: forward, loss and backward of a micro-batch captured once, then replayed.

Why: on the GPU machines the paper's CIFAR step (8-layer CNN, batch 128) is bound by the host,
not the GPU: about 260 kernel launches of about 8 us each plus PyTorch's dispatch, 10-15 ms per
step for 1.4 ms of GPU work (``recipes/results/vision_step_cuda.md``). Replaying a captured
graph costs one launch. The optimiser step, gradient clipping and the learning-rate schedule stay
the Trainer's own (a few multi-tensor kernels), so every `TrainingArguments` option that acts
there keeps working.

What a graph needs and how it is met:

- **Static shapes.** Batches of the captured shape replay the graph; any other (the last, short
  batch of an epoch) takes the ordinary eager path. Both give the same gradients.
- **Static memory.** Each batch is copied into the captured input tensors; the gradients are the
  graph's output tensors, handed to ``param.grad`` without a copy (``zero_grad`` sets them to
  None again, and the next replay rewrites them).
- **No host synchronisation inside the graph.** The losses skip their label-range check while
  a graph is being captured (``torch.cuda.is_current_stream_capturing``), so the training labels
  are checked once, on the host, before capture (:func:`check_labels_once`).
- **No side effects from the warm-up.** Capture runs the step a few times on a side stream
  first; the model's buffers (BatchNorm statistics) are restored afterwards, so the run equals
  the eager one.

It is used by `JALTrainer` when ``JALConfig(cuda_graph_step=True)`` and the run qualifies
(:func:`unsupported_reason`): one CUDA device, one process, no gradient accumulation, no fp16
loss scaling, no ``torch_compile``. On CPU the same object runs the body eagerly
(``capture=False``), which is how the tests check it against the Trainer's own step.

Example:
    >>> args = JALConfig(output_dir="out", cuda_graph_step=True)  # doctest: +SKIP
    >>> JALTrainer(model=model, args=args, train_dataset=train).train()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

# Warm-up runs before capture, as in PyTorch's CUDA-graph examples: cuDNN chooses its kernels and
# the autograd engine makes its allocations outside the graph.
WARMUP_RUNS = 3

StepBody = Callable[[Mapping[str, Tensor], Tensor], tuple[Tensor, Tensor | None]]


def unsupported_reason(args: Any, device: torch.device, world_size: int) -> str | None:
    """Why this run cannot use a graphed step, or None when it can.

    Example:
        >>> from types import SimpleNamespace as NS
        >>> unsupported_reason(NS(gradient_accumulation_steps=2, fp16=False, torch_compile=False),
        ...                    torch.device("cuda"), 1)
        'gradient_accumulation_steps > 1 (each micro-batch would overwrite the captured gradients)'
    """
    if device.type != "cuda":
        return f"the device is {device.type}, and CUDA graphs need a CUDA GPU"
    if world_size > 1:
        return "several processes (gradients are synchronised outside the graph)"
    if args.gradient_accumulation_steps > 1:
        return "gradient_accumulation_steps > 1 (each micro-batch would overwrite the captured gradients)"
    if args.fp16:
        return "fp16 (its loss scaler steps on the host); use bf16"
    if args.torch_compile:
        return "torch_compile (choose one of the two)"
    return None


def check_labels_once(labels: Tensor, num_classes: int, ignore_index: int = -100) -> None:
    """Raise ``ValueError`` unless every label is in ``[0, num_classes)`` or ``ignore_index``.

    The graphed step cannot check each batch without a host synchronisation, so the training
    labels are checked here once, before capture.

    Example:
        >>> check_labels_once(torch.tensor([0, 2, -100]), 3)
        >>> check_labels_once(torch.tensor([0, 3]), 3)
        Traceback (most recent call last):
        ...
        ValueError: training labels must lie in [0, 3) or equal -100; found 3. Check that the model's number of classes matches the data.
    """
    bad = labels[(labels != ignore_index) & ((labels < 0) | (labels >= num_classes))]
    if bad.numel():
        raise ValueError(
            f"training labels must lie in [0, {num_classes}) or equal {ignore_index}; found {int(bad[0])}. "
            "Check that the model's number of classes matches the data."
        )


class GraphedStep:
    """One micro-batch's forward, loss and backward as a replayable CUDA graph (or its eager twin).

    Args:
        body: ``(inputs, num_items) -> (loss, parts)``, the step without backward; ``loss`` is
            the scalar to differentiate, ``parts`` an optional tensor logged beside it.
        model: the model whose trainable parameters receive the gradients.
        example: a batch (tensors) fixing the captured shapes, dtypes and memory formats.
        capture: capture a CUDA graph (default: when the example lives on a CUDA device).

    Example:
        >>> model = nn.Linear(3, 2)
        >>> body = lambda b, n: (model(b["x"]).logsumexp(1).sum() / n, None)
        >>> step = GraphedStep(body, model, {"x": torch.randn(4, 3)}, capture=False)
        >>> step.accepts({"x": torch.randn(4, 3)}), step.accepts({"x": torch.randn(2, 3)})
        (True, False)
        >>> loss, _ = step({"x": torch.randn(4, 3)}, torch.tensor(4.0))
        >>> model.weight.grad.shape
        torch.Size([2, 3])
    """

    def __init__(self, body: StepBody, model: nn.Module, example: Mapping[str, Tensor], *,
                 capture: bool | None = None) -> None:
        self.body, self.model = body, model
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.static = {k: v.detach().clone() for k, v in example.items() if isinstance(v, Tensor)}
        device = next(iter(self.static.values())).device
        self.static_count = torch.zeros((), dtype=torch.float32, device=device)
        self.capture = device.type == "cuda" if capture is None else capture
        self.graph: torch.cuda.CUDAGraph | None = None
        self.outputs: tuple[Tensor, Tensor | None, tuple[Tensor | None, ...]] | None = None
        if self.capture:
            self._capture()

    def accepts(self, inputs: Mapping[str, Any]) -> bool:
        """True when ``inputs`` has exactly the captured tensors' keys, shapes and dtypes."""
        tensors = {k: v for k, v in inputs.items() if isinstance(v, Tensor)}
        if tensors.keys() != self.static.keys():
            return False
        return all(v.shape == self.static[k].shape and v.dtype == self.static[k].dtype for k, v in tensors.items())

    def _run_body(self) -> tuple[Tensor, Tensor | None, tuple[Tensor | None, ...]]:
        loss, parts = self.body(self.static, self.static_count)
        grads = torch.autograd.grad(loss, self.params, allow_unused=True)
        return loss.detach(), None if parts is None else parts.detach(), grads

    def _capture(self) -> None:
        saved = [b.detach().clone() for b in self.model.buffers()]
        self.static_count.fill_(1.0)
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_RUNS):
                self._run_body()
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.outputs = self._run_body()
        with torch.no_grad():  # the warm-up runs must not count: restore BatchNorm statistics
            for buffer, value in zip(self.model.buffers(), saved):
                buffer.copy_(value)

    def __call__(self, inputs: Mapping[str, Tensor], num_items: Tensor | int | float) -> tuple[Tensor, Tensor | None]:
        """Run the step on ``inputs``: gradients land in ``param.grad``; returns (loss, parts) copies."""
        with torch.no_grad():
            for key, tensor in self.static.items():
                tensor.copy_(inputs[key], non_blocking=True)
            self.static_count.copy_(torch.as_tensor(num_items, dtype=torch.float32), non_blocking=True)
        if self.graph is not None:
            self.graph.replay()
            loss, parts, grads = self.outputs
        else:
            loss, parts, grads = self._run_body()
        for param, grad in zip(self.params, grads):
            if grad is None:
                continue
            if param.grad is None or param.grad is grad:
                param.grad = grad  # the graph's own tensor: no copy; the next replay rewrites it
            else:
                param.grad.add_(grad)
        # Copies: the Trainer keeps the loss across steps, and the next replay rewrites the outputs.
        return loss.clone(), None if parts is None else parts.clone()


__all__ = ["GraphedStep", "check_labels_once", "unsupported_reason"]
