"""Experiments: experiment files, scenarios, the runner, the results store, reports, presets.

The hands-on preset is loaded on first use, so reading and validating an experiment file does
not import the evaluation stack.
"""

__all__ = ["HandsOnConfig", "HandsOnResult", "run_handson"]


def __getattr__(name: str):
    if name in __all__:
        import advrec.experiments.handson as handson

        return getattr(handson, name)
    raise AttributeError(f"module 'advrec.experiments' has no attribute {name!r}")
