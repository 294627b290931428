"""Experiments on real data: baselines, the cost-weight search and the
train and tune jobs behind the command line.

Its modules are its API (`keras_d2nn.experiments.tuning.D2NNHyperModel`,
`keras_d2nn.experiments.baselines.measure`, ...). They are not imported
here, so that `import keras_d2nn.experiments.baselines` does not import
keras-tuner.
"""

__all__ = ["baselines", "gate_diagnostic", "train_job", "tune_job", "tuning"]
