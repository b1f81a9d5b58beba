"""Profiling: time, memory, attention-kernel attribution and TensorBoard traces of training and
inference steps for RPB / RIB / no bias, single settings and sweeps over window and patch sizes."""
