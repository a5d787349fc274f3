"""Optimiser construction shared by the PyTorch and the compiled training paths."""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

from advrec._lazy import lazy
from advrec.errors import ConfigError
from advrec.vocabulary import OPTIMIZERS

torch = lazy("torch")


def check_optimizer(name: str) -> str:
    name = str(name).lower()
    if name not in OPTIMIZERS:
        raise ConfigError(f"unknown optimizer {name!r}; expected one of {', '.join(OPTIMIZERS)}")
    return name


def make_optimizer(
    name: str,
    params: Iterable[torch.nn.Parameter],
    lr: float,
    sparse: bool = False,
    initial_accumulator: float = 0.1,
) -> torch.optim.Optimizer:
    """A torch optimiser by name. ``sparse``: the parameters get sparse gradients (embeddings).

    Adagrad starts its accumulator at ``initial_accumulator`` (0.1, as TensorFlow's Adagrad that
    the APR code and the tutorial use); on sparse gradients it is :class:`RowAdagrad` (the same
    step, on the touched rows only). Adam on sparse gradients is ``SparseAdam`` (lazy Adam).
    """
    name = check_optimizer(name)
    if lr <= 0:
        raise ConfigError(f"lr must be positive, got {lr}")
    params = list(params)
    if name == "adagrad" and sparse:
        return _row_adagrad_class()(params, lr=lr, initial_accumulator=initial_accumulator)
    if name == "adagrad":
        return torch.optim.Adagrad(
            params, lr=lr, initial_accumulator_value=initial_accumulator, eps=1e-10
        )
    if name == "adam":
        return torch.optim.SparseAdam(params, lr=lr) if sparse else torch.optim.Adam(params, lr=lr)
    return torch.optim.SGD(params, lr=lr)


@cache
def _row_adagrad_class():
    class RowAdagrad(torch.optim.Optimizer):
        """Adagrad (``sum += g²; p -= lr·g/(√sum + 1e-10)``, PyTorch's and TensorFlow's step) that
        updates only the rows a sparse gradient touches: the rows are summed once with
        ``index_add`` and stepped with one gather and one scatter, instead of torch's sparse
        Adagrad that coalesces and masks sparse tensors of the full table's shape. A dense
        gradient takes the same step on every row. The state keys ("sum", "step") are torch's.
        """

        def __init__(self, params, lr: float, initial_accumulator: float = 0.1,
                     eps: float = 1e-10):
            super().__init__(params, {"lr": lr, "initial_accumulator": initial_accumulator,
                                      "eps": eps})
            for group in self.param_groups:
                for p in group["params"]:
                    self.state[p]["step"] = torch.tensor(0.0)
                    self.state[p]["sum"] = torch.full_like(p, group["initial_accumulator"],
                                                           memory_format=torch.preserve_format)

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                lr, eps = group["lr"], group["eps"]
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    state = self.state[p]
                    state["step"] += 1
                    grad = p.grad
                    if not grad.is_sparse:
                        state["sum"].addcmul_(grad, grad)
                        p.addcdiv_(grad, state["sum"].sqrt().add_(eps), value=-lr)
                        continue
                    index, values = grad._indices()[0], grad._values()
                    rows, inverse = torch.unique(index, return_inverse=True)
                    g = values.new_zeros((len(rows), *values.shape[1:]))
                    g.index_add_(0, inverse, values)
                    acc = state["sum"].index_select(0, rows).addcmul_(g, g)
                    state["sum"].index_copy_(0, rows, acc)
                    p.index_add_(0, rows, g.div_(acc.sqrt_().add_(eps)), alpha=-lr)

    return RowAdagrad


def __getattr__(name: str):  # the class subclasses torch's Optimizer: built when first asked for
    if name == "RowAdagrad":
        return _row_adagrad_class()
    raise AttributeError(name)
