# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Transfer learning: reuse a trained network on new classes
#
# Training a large image network from scratch needs millions of labelled images. **Transfer
# learning** reuses a network trained on one task (its *backbone*: everything but the last layer)
# as a feature extractor for another task with few labels. The recipe (Chollet, *Deep Learning
# with Python*; the keras.io transfer-learning guide) has two phases:
#
# 1. **Feature extraction**: freeze the backbone, put a new classification head on top, train
#    only the head.
# 2. **Fine-tuning**: unfreeze the top layers of the backbone and train on, at a much lower
#    learning rate, so the pretrained features adapt without being destroyed.
#
# Two details matter. The backbone is called with `training=False`, which keeps its batch-norm
# layers in inference mode: their statistics, learned on the big dataset, are not overwritten by
# a few small batches (and batch-norm layers stay frozen during fine-tuning). And the backbone's
# own `preprocess_input` goes in front of it, because each network was trained on inputs scaled
# its own way.
#
# With a network, `dlapps train imagenet --data my_photos/` fine-tunes an ImageNet MobileNetV2 on a
# folder of your images, and `dlapps predict imagenet photo.jpg` prints ImageNet's top-5 classes.
# This notebook runs offline, so it uses a backbone the project trained itself: a small CNN
# pretrained on the handwritten digits **0 to 4**, which we transfer to the digits **5 to 9** it
# has never seen, with only **10 labelled images per class**.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import dlapps
from dlapps import config, training

PROFILE = os.environ.get("DLAPPS_NOTEBOOK_PROFILE", "demo")
task = dlapps.get_task("imagenet")
cfg = config.resolve(task, PROFILE)
print(f"backbone={cfg.backbone} weights={cfg.weights} labels per class={cfg.labels_per_class or 'all'}")
print(f"phase 1: {cfg.head_epochs} epochs (head only), phase 2: {cfg.fine_tune_epochs} epochs "
      f"(top {cfg.fine_tune_layers} backbone layers, learning rate {cfg.fine_tune_learning_rate})")

# %% [markdown]
# ## The pretrained backbone
#
# `saved_models/digits_backbone/backbone.keras` maps a 28x28 image to a 128-number feature vector.
# It was trained (with a head we threw away) only on 0-4; its README records how.

# %%
from dlapps.tasks.imagenet.backbones import DIGITS_BACKBONE, load_saved_backbone

backbone = load_saved_backbone(DIGITS_BACKBONE)
print(backbone.input_shape, "->", backbone.output_shape, f"{backbone.count_params():,} weights")

# %% [markdown]
# ## The transfer model
#
# The summary shows the frozen backbone as one layer, with only the head trainable in phase 1.

# %%
data = task.load_data(cfg)
print(data.info["source_description"])
info = {**data.info, "steps_per_epoch": 4}
model = task.build_model(cfg, info)
model.summary(show_trainable=True)
trainable = {layer.name for layer in model.layers if layer.trainable_weights}
print("layers with trainable weights in phase 1:", sorted(trainable))
assert not model.get_layer("backbone").trainable and trainable == {"head"}

# %% [markdown]
# ## Two phases, one history, and the baseline
#
# `train` runs the phases from `task.phases(cfg)`; the history and the learning-curve plot run
# through both (a dashed line marks the switch). With `compare_scratch`, the same network is also
# trained from random weights on the same 50 labelled images, for the same number of epochs:
# the difference between the two accuracies is what the pretrained features are worth.

# %%
result = training.train(task, cfg, runs_root="runs_notebook", quiet=True)
test = result.metrics["test"]
print("phases:", sorted(set(result.history["phase"]), key=result.history["phase"].index))
print(f"fine-tuned accuracy on {test['n']} unseen test digits: {test['accuracy']:.3f}")
baseline = result.metrics.get("after_fit", {})  # the task's after_fit hook: the scratch comparison
if "scratch_accuracy" in baseline:  # the demo profile (compare_scratch = true)
    print(f"same network from scratch, same labels:  {baseline['scratch_accuracy']:.3f}")
    print(f"transfer gain: {baseline['transfer_gain']:+.3f}")
    # the pretrained features are worth a lot with 10 labels per class (README: 0.877 vs 0.337)
    assert baseline["transfer_gain"] > 0.2
assert result.history["phase"][0] == "head" and result.history["phase"][-1] == "fine_tune"

# %% [markdown]
# The learning curves run through both phases; the dashed line marks the switch. Accuracy often
# dips right after fine-tuning starts (the optimizer restarts and the unfrozen layers move), then
# climbs above what the frozen features allowed; a learning rate that is too high makes the dip
# permanent (try `--set fine_tune_learning_rate=0.01`). The cell prints what this run did at the switch.

# %%
history = result.history
phases = history["phase"]
switch = phases.index("fine_tune")
epochs = np.arange(1, len(phases) + 1)
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for ax, name in zip(axes, ("loss", "accuracy")):
    ax.plot(epochs, history[name], marker="o", label="train")
    ax.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
    ax.axvline(switch + 0.5, color="grey", linestyle="--", label="fine-tuning starts")
    ax.set(xlabel="epoch", title=name)
    ax.legend()
plt.show()
before, after = history["val_accuracy"][switch - 1], history["val_accuracy"][switch]
print(f"validation accuracy: {before:.3f} after the last head epoch, {after:.3f} after the first "
      f"fine-tuning epoch ({'a dip' if after < before else 'no dip'}), {history['val_accuracy'][-1]:.3f} at the end")

# %% [markdown]
# The confusion matrix and the most confident mistakes on the test digits, as the run wrote them
# to `plots/`:

# %%
plots_dir = result.run_dir / "plots"
shown = [name for name in ("confusion_matrix.png", "worst_mistakes.png") if (plots_dir / name).exists()]
for name in shown:
    fig, ax = plt.subplots(figsize=(9, 6))
    ax.imshow(plt.imread(plots_dir / name))
    ax.set_title(name)
    ax.axis("off")
    plt.show()
assert "confusion_matrix.png" in shown

# %% [markdown]
# ## With ImageNet backbones
#
# The same code runs any `keras.applications` network by name:
#
# ```
# dlapps predict imagenet photo.jpg --set backbone=efficientnet_b0        # top-5 ImageNet classes
# dlapps train imagenet --data my_photos/ --set backbone=resnet50         # transfer + fine-tuning
# dlapps train imagenet --profile full                                    # MobileNetV2 on tf_flowers
# ```
#
# Offline, ImageNet weights cannot be downloaded: pass a local copy with `--set weights=PATH`.
