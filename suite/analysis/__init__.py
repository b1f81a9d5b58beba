"""Research tools beyond the paper, on trained checkpoints: the positional bias a model learned
(`bias_fields`), an RPB model turned into a flash-capable low-rank model (`lowrank`), and a RIB model
evaluated at windows it was not trained on (`windows`). Each writes CSV + JSON (with a run record)
into a folder; `suite report` turns them into REPORT.md sections."""
