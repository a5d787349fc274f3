"""Adversarial training as a regulariser for the `Trainer`: APR (He et al., SIGIR'18), and AMR
(Tang et al., TKDE'19) when the perturbed block is a content-feature block."""

from __future__ import annotations

from collections.abc import Sequence

from advrec._lazy import lazy
from advrec.errors import ConfigError
from advrec.training.perturbation import check_eps, check_norm, fgsm_direction

torch = lazy("torch")


class AdversarialRegularizer:
    """λ · L(Θ + Δ_adv), with Δ_adv = FGSM of the current batch's clean loss, held constant.

    Each step builds Δ afresh from the batch's own clean gradient (never a stale Δ from an earlier
    batch) and the adversarial loss is evaluated at Θ + Δ (never at clean parameters); Δ carries
    no gradient. The clean gradient is that of the ranking loss without L2, as in the APR code.
    """

    def __init__(self, eps: float = 0.5, reg: float = 1.0,
                 blocks: Sequence[str] = ("user", "item"), norm: str = "l2"):
        self.eps = check_eps(eps)
        if reg < 0:
            raise ConfigError(f"adversarial reg (λ) must be >= 0, got {reg}")
        self.reg = float(reg)
        self.blocks = tuple(blocks)
        self.norm = check_norm(norm)
        # kept across steps: zero Δ tables for sparse gradients (and the rows a step wrote into
        # them), zero leaves for fixed blocks
        self._buffers: dict[str, torch.Tensor] = {}
        self._written: dict[str, torch.Tensor] = {}
        self._zero_leaves: dict[str, torch.Tensor] = {}

    @staticmethod
    def _ranking_loss(module, batch, clean_loss):
        """The clean loss without L2: reuse the step's own graph when there is no L2 term."""
        if clean_loss is not None and not getattr(module, "reg", 0):
            return clean_loss
        return module.loss(batch, l2=False)

    def perturbation(self, module, batch, clean_loss: torch.Tensor | None = None,
                     reuse: bool = False) -> dict[str, torch.Tensor]:
        """Δ for this batch: FGSM on the clean ranking loss w.r.t. the chosen blocks.

        ``reuse`` (the training step) writes a sparse gradient's Δ into a zero table kept across
        steps, whose touched rows the step zeroes again: no full-size allocation per batch.
        """
        tables = module.blocks()
        unknown = set(self.blocks) - set(tables)
        if unknown:
            raise ConfigError(f"unknown parameter block(s) {sorted(unknown)}; "
                              f"the model has {sorted(tables)}")
        fixed = [b for b in self.blocks if not tables[b].requires_grad]
        if fixed:  # content features are not trained: differentiate at a zero Δ on them
            zeros = {b: self._zero_leaf(b, tables[b]) for b in fixed}
            loss = module.loss(batch, perturbation=zeros, l2=False)
            leaves = [zeros[b] if b in zeros else tables[b] for b in self.blocks]
            grads = torch.autograd.grad(loss, leaves)
        else:
            grads = torch.autograd.grad(self._ranking_loss(module, batch, clean_loss),
                                        [tables[b] for b in self.blocks], retain_graph=True)
        delta = {}
        for b, g in zip(self.blocks, grads, strict=True):
            out = None
            if reuse and g.is_sparse:
                g = g.coalesce()
                out = self._buffer(b, g)
                self._written[b] = g.indices()[0]
            delta[b] = self.direction(g, out=out).detach()
        return delta

    def direction(self, grad: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
        """Δ of one block from its clean gradient: FGSM of each row (APR's ε·g/‖g‖ per row, or
        the sign); a sparse gradient's Δ is written into ``out``."""
        return fgsm_direction(grad, self.eps, self.norm, out=out)

    def adversarial_loss(self, module, batch, delta: dict[str, torch.Tensor]) -> torch.Tensor:
        """The term added to the clean loss: λ·L(Θ + Δ), the ranking loss without L2."""
        return self.reg * module.loss(batch, perturbation=delta, l2=False)

    def _zero_leaf(self, block: str, table: torch.Tensor) -> torch.Tensor:
        """A zero Δ of ``table``'s shape to differentiate at, kept across steps (``autograd.grad``
        never writes into it)."""
        leaves = self._zero_leaves
        leaf = leaves.get(block)
        if leaf is None or leaf.shape != table.shape or leaf.device != table.device:
            leaf = leaves[block] = torch.zeros_like(table, requires_grad=True)
        return leaf

    def _buffer(self, block: str, grad: torch.Tensor) -> torch.Tensor:
        """The kept zero table of ``block``, (re)made when the shape or device changes."""
        buffers = self._buffers
        buf = buffers.get(block)
        if buf is None or buf.shape != grad.shape or buf.device != grad.device:
            buf = buffers[block] = torch.zeros(grad.shape, dtype=grad.dtype, device=grad.device)
        return buf

    def backward(self, module, batch) -> torch.Tensor:
        """Accumulate ∇(L + λ·L(Θ + Δ)) into the parameters' ``.grad``, Δ from the same batch;
        returns the clean loss L (ranking loss + L2) for the log.

        One backward of the clean ranking loss gives both Δ's gradient (the blocks' ``.grad``)
        and the ranking part of the step; the L2 term (the module's ``l2_penalty``, split from
        the ranking loss) joins the adversarial backward. So an adversarial step costs two
        forward/backward passes, not the three of differentiating Δ's loss apart. A module with
        L2 but no ``l2_penalty``, or with ``shared_backward = False``, is differentiated as a
        whole objective (the same gradient).
        """
        tables = module.blocks()
        with_l2 = bool(getattr(module, "reg", 0))
        shared = ((not with_l2 or hasattr(module, "l2_penalty"))
                  and getattr(module, "shared_backward", True)
                  and type(self).perturbation is AdversarialRegularizer.perturbation
                  and type(self).__call__ is AdversarialRegularizer.__call__
                  and all(b in tables and tables[b].requires_grad
                          and tables[b].grad is None for b in self.blocks))
        if not shared:
            clean = module.loss(batch)
            (clean + self(module, batch, clean)).backward()
            return clean.detach()
        ranking = module.loss(batch, l2=False)
        ranking.backward()
        delta = {}
        for b in self.blocks:
            g = tables[b].grad
            if g is None:  # the loss does not reach this block: Δ = 0 there
                g = torch.zeros_like(tables[b])
            elif g.is_sparse:
                g = g.coalesce()
                self._written[b] = g.indices()[0]
                delta[b] = self.direction(g, out=self._buffer(b, g))
                continue
            delta[b] = self.direction(g.detach())
        rest = self.adversarial_loss(module, batch, delta)
        clean = ranking.detach()
        if with_l2:
            l2 = module.l2_penalty(batch)
            rest = rest + l2
            clean = clean + l2.detach()
        rest.backward()
        self._clear_written()
        return clean

    def _clear_written(self) -> None:
        """Zero the rows of the kept Δ tables the last step wrote."""
        for block, rows in self._written.items():
            self._buffers[block].index_fill_(0, rows, 0.0)
        self._written.clear()

    def __call__(self, module, batch, clean_loss: torch.Tensor) -> torch.Tensor:
        delta = self.perturbation(module, batch, clean_loss, reuse=True)
        loss = self.adversarial_loss(module, batch, delta)
        self._clear_written()  # the forward pass has gathered its rows of Δ
        return loss
