"""The `noisy_label_accuracy` evaluate metric (a package only so that it ships in the wheel).

Load it with `jal_trainer.metrics.load_metric` or ``evaluate.load(<this folder>)``; see
`noisy_label_accuracy.py`.
"""
