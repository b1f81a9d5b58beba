"""Training engine: YAML recipes (`config`), the loop (`trainer`), checkpoints, LR schedules, the sample
order (`sampler`), DDP helpers (`distributed`), run logs (`monitor`) and the smoke benchmark (`smoke`).

Submodules are imported where used, so `import suite.train` stays cheap.
"""
