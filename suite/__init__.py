"""RIB suite: benchmark and reproduce SR transformers with RPB, RIB and no positional bias."""

__version__ = "0.1.0"
