"""Micro-benchmarks of model components (`suite bench ...`); whole-network profiling lives in suite.profiling."""
