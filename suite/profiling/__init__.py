"""Profiling: time, memory, attention-kernel attribution and TensorBoard traces of training and
inference steps for RPB / RIB / no bias, single settings (`measure`) and sweeps (`sweep`); the one
attention benchmark (`attention`) and the one timing helper every timed number goes through
(`timing`); the result tables and their reader (`tables`, no torch)."""
