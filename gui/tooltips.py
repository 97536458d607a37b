"""What each control does, in the plain words of standard practice.

One entry per config key (and a few UI-only controls). ``tests/test_gui_window.py``
checks that every bound control has a tooltip.
"""

from __future__ import annotations

TOOLTIPS: dict[str, str] = {
    # -- data ---------------------------------------------------------------------------
    "data.dir": "The folder of images: one subfolder per class (cats/, dogs/, ...). "
                "Drop a folder on the window or use Open folder (Ctrl+O).",
    "data.validation_split": "Share of each class held back to measure accuracy on images the "
                             "model never trained on. 0.2 (20 %) is usual; use 0.1 for large data sets. "
                             "Ignored when a validation folder is set.",
    "data.validation_dir": "Optional separate folder with the same class subfolders, used only for "
                           "validation. Leave empty to split the training folder instead.",
    "data.image_size": "Images are resized to this square size in pixels. Smaller trains much faster; "
                       "'backbone default' uses the size the network was pretrained at (often 224). "
                       "96-160 is a good start on a CPU.",
    "data.batch_size": "Images per training step. 32 is a good default; lower it (16, 8) if you run out "
                       "of memory, raise it on a big GPU.",
    "data.seed": "Seed of the train/validation split: the same seed gives the same split.",
    "data.class_weight": "'balanced' weighs rare classes up so the model does not just learn to "
                         "predict the most common class. Use it when classes have very different counts.",
    # -- model --------------------------------------------------------------------------
    "model.backbone": "The pretrained network the classifier is built on. MobileNetV2 and "
                      "EfficientNetB0 are fast and good defaults; larger networks are more accurate "
                      "but much slower. SmallCNN is a tiny network trained from scratch (for tests).",
    "model.weights": "Where the backbone's starting weights come from. ImageNet weights (downloaded "
                     "once) make fine-tuning work with few images; 'none' trains from scratch and "
                     "needs far more data.",
    "model.head.hidden_units": "Dense layers between the backbone and the output, e.g. '256' or "
                               "'512, 128'. Empty (none) is usual for fine-tuning and overfits least.",
    "model.head.activation": "Activation of the hidden dense layers. relu is the standard choice; "
                             "gelu and swish are smooth alternatives.",
    "model.head.dropout": "Randomly drops this share of features during training to fight overfitting. "
                          "0.2-0.5 is common before dense layers; 0 turns it off.",
    "model.head.batch_norm": "Adds batch normalization in the head. Can stabilize training of a large "
                             "head; usually not needed.",
    "model.head.kernel_initializer": "How the head's weights start. he_normal suits relu; "
                                     "glorot_uniform is the Keras default.",
    "model.batch_norm_momentum": "Momentum of the backbone's BatchNorm statistics. 'keep' leaves the "
                                 "pretrained value (0.99+). Use 0.9 when training from scratch or "
                                 "unfreezing many layers on small data, so the statistics can adapt.",
    # -- regularization -----------------------------------------------------------------
    "regularization.l1": "L1 penalty on the head's weights: pushes weights to exactly zero. "
                         "Rarely needed; try 1e-5 to 1e-4.",
    "regularization.l2": "L2 penalty (weight decay) on the head's weights: keeps them small to reduce "
                         "overfitting. 1e-4 is a common value; 0 turns it off.",
    "regularization.max_norm": "Caps the norm of each unit's incoming weights (often used with dropout). "
                               "3-4 is common; 0 turns it off.",
    "regularization.label_smoothing": "Trains towards 0.9/0.1-style targets instead of 1/0, which makes "
                                      "the model less over-confident. 0.1 is a common value.",
    "training.early_stopping.patience": "Stop when the monitored metric has not improved for this many "
                                        "epochs. 3-5 is typical; 0 never stops early.",
    "training.early_stopping.restore_best": "At the end, keep the weights of the best epoch rather than "
                                            "the last one.",
    "training.monitor": "Which validation metric picks the best epoch and drives early stopping. "
                        "val_loss is smoother; val_accuracy is what you usually care about.",
    # -- augmentation -------------------------------------------------------------------
    "augmentation.horizontal_flip": "Mirror images left-right at random. Right for most photos; "
                                    "wrong for text or when left/right matters.",
    "augmentation.vertical_flip": "Flip images upside down at random. Good for microscopy, satellite "
                                  "and top-down images; wrong for everyday photos.",
    "augmentation.rotation": "Rotate by up to this fraction of a full turn (0.05 = 18 degrees).",
    "augmentation.zoom": "Zoom in or out by up to this fraction (0.1 = 10 %).",
    "augmentation.translation": "Shift images by up to this fraction of their width and height.",
    "augmentation.random_crop": "Crop a random region of up to this fraction smaller, then resize back.",
    "augmentation.brightness": "Change brightness by up to this amount (0.2 is moderate).",
    "augmentation.contrast": "Change contrast by up to this factor (0.2 is moderate).",
    "augmentation.saturation": "Change colour saturation by up to this amount; 0 for grayscale data.",
    "augmentation.hue": "Shift hues by up to this fraction of the colour wheel. Keep small (<= 0.05) "
                        "when colour tells the classes apart.",
    "augmentation.gaussian_noise": "Add random noise of this standard deviation (on a 0-1 pixel scale).",
    "augmentation.cutout": "Blank out a random square of up to this fraction of the image, so the "
                           "model cannot rely on one small detail.",
    "augmentation.mixup": "Blend pairs of images and their labels (MixUp). 0.2 is a common strength; "
                          "helps larger data sets, may slow learning on tiny ones.",
    "augmentation.cutmix": "Paste a patch of one image into another and mix labels by area (CutMix). "
                           "1.0 is the usual strength.",
    "augmentation.randaugment": "Apply a random sequence of standard augmentations at this strength "
                                "(RandAugment). Replaces hand-tuning several augmentations.",
    # -- optimizer ----------------------------------------------------------------------
    "optimizer.name": "How weights are updated. Adam with learning rate 1e-3 is a good default; "
                      "SGD with momentum 0.9 can generalize better with a schedule; "
                      "AdamW adds decoupled weight decay.",
    "optimizer.learning_rate": "Step size of the head phase. Adam: 1e-3 is a good default; "
                               "SGD: 1e-2 to 1e-1. Too high and the loss jumps or becomes NaN; "
                               "too low and it barely moves.",
    "optimizer.momentum": "How much of the previous update carries over (SGD, RMSprop). "
                          "0.9 is the standard value.",
    "optimizer.nesterov": "Nesterov momentum: a look-ahead variant of SGD momentum, "
                          "often slightly better.",
    "optimizer.amsgrad": "AMSGrad variant of Adam: can help when Adam's loss is unstable late in training.",
    "optimizer.weight_decay": "Shrinks all weights a little every step. AdamW: 1e-4 to 1e-2 "
                              "(0.004 is the Keras default); 0 turns it off.",
    "optimizer.clipnorm": "Rescale each gradient whose norm exceeds this value; 1.0 guards against "
                          "exploding updates. 0 turns it off. Use clipnorm or clipvalue, not both.",
    "optimizer.clipvalue": "Clip every gradient value to [-v, v]. 0 turns it off.",
    "optimizer.ema": "Keep an exponential moving average of the weights and evaluate with it; "
                     "smooths noisy training.",
    "optimizer.ema_momentum": "How slowly the weight average follows the weights (0.99 is usual).",
    # -- schedule -----------------------------------------------------------------------
    "schedule.name": "How the learning rate changes over training. 'constant' is simplest; "
                     "'cosine' (smooth decay to a minimum) is a strong default for fine-tuning; "
                     "'reduce_on_plateau' lowers it when validation stops improving.",
    "schedule.warmup_epochs": "Ramp the learning rate up linearly from 0 over this many epochs; "
                              "protects pretrained weights from large early updates. 0-1 is typical.",
    "schedule.step_epochs": "Epochs between decays ('step'), or the decay period "
                            "('exponential', 'inverse_time').",
    "schedule.decay_rate": "Multiply the learning rate by this at each decay (0.5 halves it; "
                           "0.1 divides by ten).",
    "schedule.min_learning_rate": "The schedule never goes below this learning rate.",
    "schedule.restart_epochs": "Length of the first cosine cycle before the rate jumps back up.",
    "schedule.restart_t_mul": "Each cycle is this many times longer than the previous one (2 is usual).",
    "schedule.restart_m_mul": "Each restart peaks at this fraction of the previous peak (1 = same peak).",
    "schedule.cycle_epochs": "Epochs of one up-and-down cycle between the minimum and the learning rate.",
    "schedule.one_cycle_warmup_fraction": "Share of training spent raising the rate before decaying it "
                                          "(0.3 is the usual one-cycle value).",
    "schedule.plateau_patience": "Epochs without improvement before the learning rate is reduced.",
    # -- training -----------------------------------------------------------------------
    "training.head_epochs": "Epochs training only the new head with the backbone frozen. Fast; "
                            "3-10 is typical.",
    "training.fine_tune_epochs": "Epochs after unfreezing the top backbone layers. Slower; "
                                 "usually gives the last few percent of accuracy. 0 skips fine-tuning.",
    "training.fine_tune_layers": "How many of the backbone's top layers to unfreeze for fine-tuning. "
                                 "0 trains only the head; 20-50 is a common middle ground; "
                                 "'all' unfreezes the whole backbone (needs more data).",
    "training.fine_tune_learning_rate": "Learning rate of the fine-tuning phase. 'auto' uses a tenth of "
                                        "the head's rate, the usual recipe: big updates would wreck "
                                        "the pretrained weights.",
    "training.seed": "Seed for weight initialization and shuffling, so runs can be repeated.",
    # -- UI-only ------------------------------------------------------------------------
    "ui.runs_dir": "Where each run's folder (model, metrics, log) is created. Not part of the "
                   "training config.",
    "ui.fine_tune_all": "Unfreeze every backbone layer for fine-tuning.",
    "ui.show_earlier_runs": "Keep the curves of earlier runs since the app opened, drawn faintly, "
                            "for comparison.",
}


def tooltip(key: str) -> str:
    """The tooltip of a config key; every key must have one (tests check it)."""
    return TOOLTIPS.get(key, "")
