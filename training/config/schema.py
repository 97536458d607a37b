"""The sections of the config, one dataclass each; every setting is one ``knob(...)`` row.

A row says, once, everything a reader of the key needs: default (the field's), type (its
annotation), range or choices, what null and 0 mean, the control's label, unit and step,
and its help. The section docstrings open their section of the README's config reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from models.registry import backbone_specs
from training.config.knobs import knob

SCHEMA_VERSION = 1

# numpy's and TensorFlow's seeds are unsigned 32-bit integers.
MAX_SEED = 2**32 - 1

# The weights between two consecutive hidden layers of the head: 8192 x 8192 is far beyond
# any useful head and still fits in about 1 GB (float32 weights, gradients and Adam's two
# slots); 65536 x 65536, which each size alone allows, would need 69 GB when the model is built.
MAX_HEAD_LAYER_WEIGHTS = 8192 * 8192

BUILTIN_SAMPLE = "builtin:shapes"

# The backbones and their facts live in models/registry.py, which imports no Keras.
BACKBONES = tuple(spec.name for spec in backbone_specs())
NO_IMAGENET_WEIGHTS = tuple(spec.name for spec in backbone_specs() if not spec.has_imagenet)
OPTIMIZERS = ("sgd", "adagrad", "rmsprop", "adam", "adamw", "nadam", "adadelta")
SCHEDULES = (
    "constant", "step", "exponential", "inverse_time", "cosine", "cosine_restarts",
    "cyclic", "one_cycle", "reduce_on_plateau",
)
ACTIVATIONS = ("relu", "gelu", "swish", "elu", "selu", "tanh", "leaky_relu")
INITIALIZERS = ("he_normal", "he_uniform", "glorot_normal", "glorot_uniform", "lecun_normal")
MONITORS = ("val_loss", "val_accuracy")
CLASS_WEIGHTS = ("none", "balanced")
TRAINING_MODES = ("auto", "fine_tune", "head_only", "from_scratch")
FEATURE_CACHE_MODES = ("auto", "off")
# Mixed precision and XLA: `auto` decides from the device (training.engine.precision).
DEVICE_SWITCHES = ("auto", "on", "off")
AUGMENT_PLACES = ("auto", "input_pipeline", "training_step")
# tf.distribute: one device, every GPU of the machine, or a cluster (training.engine.distribute).
DISTRIBUTED_MODES = ("off", "mirrored", "multi_worker")

# The most of each class that validation and test may hold out together; the rest trains.
MAX_HELD_OUT = 0.9

EPOCHS = 1000.0        # the longest schedule period, in epochs
MAX_EPOCHS = 10000     # the longest phase
MAX_RATE = 10.0        # the highest learning rate
MAX_CLIP = 1e6


def _seed(default: int, help: str, label: str, advice: str) -> int:
    return knob(default, help=help, label=label, widget="integer", minimum=0, maximum=MAX_SEED,
                advice=advice)


def _strength(default: float, maximum: float, typical: float, label: str, help: str,
              advice: str = "") -> float:
    return knob(default, help=help, label=label, widget="strength", minimum=0.0, maximum=maximum,
                step=0.01 if maximum <= 0.5 else 0.05, zero_text="off", typical=typical, advice=advice)


@dataclass
class DataConfig:
    dir: str = knob(
        BUILTIN_SAMPLE, widget="folder", label="Folder",
        help="image folder, one subfolder per class; `builtin:shapes` is the generated sample",
        advice="Drop a folder on the window or use Open folder (Ctrl+O).")
    validation_split: float = knob(
        0.2, label="Validation share", minimum=0.0, maximum=MAX_HELD_OUT, step=0.05,
        help="fraction of each class held out for validation (stratified); 0 needs `data.validation_dir`",
        advice="0.2 (20 %) is usual; use 0.1 for large data sets. Ignored when a validation folder is set.")
    validation_dir: str | None = knob(
        None, widget="folder", label="Validation folder", none_text="split the training folder",
        help="a separate validation folder with the same class subfolders; overrides the split")
    test_split: float = knob(
        0.0, label="Test share", minimum=0.0, maximum=0.5, maximum_open=True, step=0.05,
        zero_text="no test set",
        help="fraction of each class held out as a test set (stratified, taken before the validation "
             "split); never used for training or for choosing the best epoch",
        advice="0.1-0.2 gives an honest final score on images the run never learned from nor chose by. "
               "Both shares are of all the images: 0.2 validation and 0.1 test leave 70 % to train.")
    test_dir: str | None = knob(
        None, widget="folder", label="Test folder", none_text="no test folder",
        help="a separate test folder with the same class subfolders, outside `data.dir`; used as the "
             "test set instead of `data.test_split`")
    image_size: int | None = knob(
        128, widget="integer", label="Image size", unit="px", minimum=32, maximum=1024, step=16,
        none_text="backbone default", help="images are resized to this square size",
        advice="Smaller trains much faster; the backbone default is the size it was pretrained at "
               "(224 for most). 96-160 is a good start on a CPU.")
    batch_size: int = knob(
        32, widget="integer", label="Batch size", minimum=1, maximum=4096, step=1,
        help="images per training step",
        advice="32 is a good default; lower it (16, 8) if you run out of memory, raise it on a big GPU.")
    seed: int = _seed(1337, "seed of the split and of the shuffling", "Split seed",
                      "The same seed gives the same split.")
    class_weight: str = knob(
        "none", widget="choice", label="Class weights", choices=CLASS_WEIGHTS,
        help="`balanced` weights the loss inversely to class frequency (for imbalanced data)",
        advice="Use it when classes have very different counts, so the model does not just learn "
               "to predict the most common class.")


@dataclass
class HeadConfig:
    hidden_units: list[int] = knob(
        default_factory=list, widget="int_list", label="Hidden units", minimum=1, maximum=65536,
        help="sizes of hidden dense layers between the pooled features and the classifier, e.g. `[256]`",
        advice="Type e.g. 256 or 512, 128. None (empty) is usual for fine-tuning and overfits least.")
    activation: str = knob(
        "relu", widget="choice", label="Activation", choices=ACTIVATIONS,
        help="activation of the hidden layers",
        advice="relu is the standard choice; gelu and swish are smooth alternatives.")
    dropout: float = knob(
        0.2, label="Dropout", minimum=0.0, maximum=1.0, maximum_open=True, step=0.05, zero_text="off",
        help="dropout rate before each dense layer of the head",
        advice="Fights overfitting; 0.2-0.5 is common before dense layers.")
    batch_norm: bool = knob(
        False, widget="switch", label="Batch norm", switch_text="after each hidden layer",
        help="batch normalization after each hidden dense layer",
        advice="Can stabilize training of a large head; usually not needed.")
    kernel_initializer: str = knob(
        "glorot_uniform", widget="choice", label="Initializer", choices=INITIALIZERS,
        help="how the head's weights start: `he_normal`/`he_uniform` (He, for ReLU), "
             "`glorot_normal`/`glorot_uniform` (Glorot, the Keras default), `lecun_normal`")


@dataclass
class ModelConfig:
    backbone: str = knob(
        "MobileNetV2", widget="backbone", label="Backbone", choices=BACKBONES,
        help="the pretrained network the classifier is built on (a `keras.applications` model); "
             "`SmallCNN` is a small network of our own with no ImageNet weights, for quick tries",
        advice="MobileNetV2 and EfficientNetB0 are fast and good defaults; larger networks are more "
               "accurate but much slower.")
    weights: str = knob(
        "imagenet", widget="weights", label="Weights",
        choice_labels={"imagenet": "ImageNet (pretrained)", "none": "none (train from scratch)"},
        help="`imagenet`, `none` (random initialization), or the path of a weights file "
             "(`.h5`, `.weights.h5`, `.keras`)",
        advice="ImageNet weights (downloaded once) make fine-tuning work with few images; none trains "
               "from scratch and needs far more data.")
    head: HeadConfig = field(default_factory=HeadConfig)
    batch_norm_momentum: float | None = knob(
        None, label="BatchNorm momentum", minimum=0.0, maximum=1.0, maximum_open=True, step=0.01,
        none_text="auto",
        help="momentum of the backbone's BatchNorm layers; `null` = 0.9 when training from scratch, "
             "the backbone's own (0.99+) otherwise",
        advice="Use 0.9 when unfreezing many layers on small data, so the statistics can adapt.")


@dataclass
class RegularizationConfig:
    l1: float = knob(
        0.0, widget="log", label="L1", minimum=0.0, maximum=1.0, step=1e-6, zero_text="off",
        help="L1 penalty on the head's dense kernels (elastic net when `l2` is set too)",
        advice="Pushes weights to exactly zero. Rarely needed; try 1e-5 to 1e-4.")
    l2: float = knob(
        0.0, widget="log", label="L2", minimum=0.0, maximum=1.0, step=1e-6, zero_text="off",
        help="L2 penalty on the head's dense kernels",
        advice="Keeps weights small to reduce overfitting; 1e-4 is a common start.")
    max_norm: float = knob(
        0.0, label="Max-norm", minimum=0.0, maximum=MAX_CLIP, step=0.5, zero_text="off",
        help="max-norm constraint on each unit's incoming weights",
        advice="3-4 is common, often together with dropout.")
    label_smoothing: float = knob(
        0.0, label="Label smoothing", minimum=0.0, maximum=0.5, step=0.05, zero_text="off",
        help="label smoothing of the cross-entropy loss",
        advice="Trains towards 0.9/0.1-style targets instead of 1/0, so the model is less "
               "over-confident. 0.1 is common.")


@dataclass
class AugmentationConfig:
    """Applied to training images only, on the fly, with Keras preprocessing layers. Strengths
    are 0 (off) up to the maximum shown."""

    horizontal_flip: bool = knob(
        True, widget="switch", label="Horizontal flip", help="random left-right flips",
        advice="Right for most photos; wrong for text, digits, or classes where left/right matters.")
    vertical_flip: bool = knob(
        False, widget="switch", label="Vertical flip", help="random up-down flips",
        advice="Good for microscopy, satellite and top-down images; wrong for everyday photos.")
    rotation: float = _strength(0.05, 0.5, 0.05, "Rotation",
                                "random rotation up to this fraction of a full turn (0.05 = 18 degrees)")
    zoom: float = _strength(0.1, 0.9, 0.1, "Zoom", "random zoom in or out by up to this fraction")
    translation: float = _strength(0.1, 0.5, 0.1, "Translation",
                                   "random shift by up to this fraction of the size")
    random_crop: float = _strength(0.0, 0.5, 0.1, "Random crop",
                                   "random crops: scale up by 1 + strength, crop back to size")
    brightness: float = _strength(0.0, 1.0, 0.2, "Brightness",
                                  "random brightness change up to this fraction", "0.2 is moderate.")
    contrast: float = _strength(0.0, 1.0, 0.2, "Contrast",
                                "random contrast change up to this fraction", "0.2 is moderate.")
    saturation: float = _strength(0.0, 1.0, 0.2, "Saturation", "random saturation change (colour jitter)",
                                  "Keep 0 for grayscale data.")
    hue: float = _strength(0.0, 0.5, 0.02, "Hue", "random hue shift (colour jitter)",
                           "Keep it small (<= 0.05) when colour tells the classes apart.")
    gaussian_noise: float = _strength(0.0, 0.5, 0.05, "Gaussian noise",
                                      "Gaussian pixel noise, standard deviation as a fraction of the "
                                      "pixel range")
    cutout: float = _strength(0.0, 0.5, 0.2, "Cutout",
                              "random erasing of a rectangle (cutout), strength = probability",
                              "The model cannot rely on one small detail.")
    mixup: float = _strength(0.0, 1.0, 0.2, "MixUp",
                             "mixup: blend pairs of images and their labels; strength = Beta alpha",
                             "0.2 is common; helps larger data sets, may slow learning on tiny ones.")
    cutmix: float = _strength(0.0, 1.0, 1.0, "CutMix",
                              "cutmix: paste a patch of another image, mixing labels by area; "
                              "strength = Beta alpha", "1.0 is the usual strength.")
    randaugment: float = _strength(0.0, 1.0, 0.5, "RandAugment",
                                   "RandAugment: two random operations per image at this magnitude",
                                   "Replaces hand-tuning several augmentations.")


@dataclass
class OptimizerConfig:
    name: str = knob(
        "adam", widget="choice", label="Optimizer", choices=OPTIMIZERS,
        choice_labels={"sgd": "SGD", "adagrad": "Adagrad", "rmsprop": "RMSprop", "adam": "Adam",
                       "adamw": "AdamW", "nadam": "Nadam", "adadelta": "Adadelta"},
        help="how the weights are updated (the Keras optimizer)",
        advice="Adam with learning rate 1e-3 is a good default; SGD with momentum 0.9 can generalize "
               "better with a schedule; AdamW adds decoupled weight decay.")
    learning_rate: float = knob(
        1e-3, widget="log", label="Learning rate", minimum=0.0, minimum_open=True, maximum=MAX_RATE,
        step=1e-6, help="base learning rate of the head phase",
        advice="Adam: 1e-3 is a good default; SGD: 1e-2 to 1e-1. Too high and the loss jumps or becomes "
               "NaN; too low and it barely moves.")
    momentum: float = knob(
        0.9, label="Momentum", minimum=0.0, maximum=1.0, maximum_open=True, step=0.05,
        help="SGD momentum", advice="0.9 is the standard value.")
    nesterov: bool = knob(
        False, widget="switch", label="Nesterov", switch_text="use Nesterov momentum",
        help="Nesterov momentum (SGD only)", advice="A look-ahead variant of momentum, often slightly better.")
    amsgrad: bool = knob(
        False, widget="switch", label="AMSGrad", switch_text="use the AMSGrad variant",
        help="the AMSGrad variant (Adam, AdamW)",
        advice="Can help when Adam's loss is unstable late in training.")
    weight_decay: float = knob(
        0.0, widget="log", label="Weight decay", minimum=0.0, maximum=1.0, step=1e-6, zero_text="off",
        help="decoupled weight decay: shrinks all weights a little every step",
        advice="AdamW: 1e-4 to 1e-2 (0.004 is the Keras default).")
    clipnorm: float = knob(
        0.0, label="Clip norm", minimum=0.0, maximum=MAX_CLIP, step=0.5, zero_text="off",
        help="rescale each gradient whose norm exceeds this value",
        advice="1.0 guards against exploding updates. Use clipnorm or clipvalue, not both.")
    clipvalue: float = knob(
        0.0, label="Clip value", minimum=0.0, maximum=MAX_CLIP, step=0.5, zero_text="off",
        help="clip each gradient value to +-this (not with `optimizer.clipnorm`)")
    ema: bool = knob(
        False, widget="switch", label="Weight average", switch_text="exponential moving average (EMA)",
        help="keep an exponential moving average of the weights (Polyak averaging) and validate and save it",
        advice="Smooths noisy training.")
    ema_momentum: float = knob(
        0.99, label="EMA momentum", minimum=0.0, maximum=1.0, maximum_open=True, step=0.001,
        help="momentum of that average", advice="How slowly the average follows the weights; 0.99 is usual.")


@dataclass
class ScheduleConfig:
    """Learning-rate schedules, set in epochs. Each phase runs its own schedule from its own base
    rate. Formulas (step `s`, `E` steps per epoch) are in `training/engine/optim.py`."""

    name: str = knob(
        "constant", widget="choice", label="Schedule", choices=SCHEDULES,
        help="how the learning rate changes over each phase: `inverse_time` is 1/t decay, "
             "`cosine_restarts` is SGDR, `cyclic` is triangular",
        advice="constant is simplest; cosine (smooth decay to a minimum) is a strong default for "
               "fine-tuning; reduce_on_plateau lowers the rate when validation stops improving.")
    warmup_epochs: float = knob(
        0.0, label="Warm-up", unit="epochs", minimum=0.0, maximum=EPOCHS, step=0.5, zero_text="off",
        help="linear warm-up from ~0 to the base rate over this many epochs (any schedule but "
             "`reduce_on_plateau`)",
        advice="Protects pretrained weights from large early updates; 0-1 is typical.")
    step_epochs: float = knob(
        3.0, label="Step every", unit="epochs", minimum=0.0, minimum_open=True, maximum=EPOCHS, step=1.0,
        help="`step`: multiply the rate by `schedule.decay_rate` every this many epochs")
    decay_rate: float = knob(
        0.5, label="Decay factor", minimum=0.0, minimum_open=True, maximum=1.0, step=0.05,
        help="`step`, `exponential` (per epoch), `inverse_time` (rate / (1 + decay_rate * epoch)), "
             "`reduce_on_plateau` (factor)",
        advice="0.5 halves the rate; 0.1 divides it by ten.")
    min_learning_rate: float = knob(
        0.0, widget="log", label="Minimum rate", minimum=0.0, maximum=MAX_RATE, step=1e-6,
        help="floor of `cosine`, `cosine_restarts`, `one_cycle` and `reduce_on_plateau`, the low end of "
             "`cyclic`; at most `optimizer.learning_rate` (0 = a tenth of the base for `cyclic`, "
             "base / 10000 for `one_cycle`)")
    restart_epochs: float = knob(
        2.0, label="First cycle", unit="epochs", minimum=0.0, minimum_open=True, maximum=EPOCHS, step=1.0,
        help="`cosine_restarts`: length of the first cycle before the rate jumps back up")
    restart_t_mul: float = knob(
        2.0, label="Cycle length ×", minimum=1.0, maximum=10.0, step=0.5,
        help="`cosine_restarts`: each cycle is this many times longer", advice="2 is usual.")
    restart_m_mul: float = knob(
        1.0, label="Restart peak ×", minimum=0.0, minimum_open=True, maximum=1.0, step=0.1,
        help="`cosine_restarts`: each restart peaks at this fraction of the previous peak",
        advice="1 = the same peak.")
    save_snapshots: bool = knob(
        False, widget="switch", label="Snapshots", switch_text="save a snapshot at the end of each cycle",
        help="`cosine_restarts`: save the model at the end of each cycle of the last phase into "
             "`snapshots/`, for a snapshot ensemble (`python main.py evaluate RUN --snapshots`)",
        advice="Snapshot ensembles (Huang et al. 2017): each cycle ends in a different minimum; "
               "averaging them is often better than the last one alone, for free.")
    cycle_epochs: float = knob(
        2.0, label="Cycle", unit="epochs", minimum=0.0, minimum_open=True, maximum=EPOCHS, step=1.0,
        help="`cyclic`: length of one full up-and-down cycle")
    one_cycle_warmup_fraction: float = knob(
        0.3, label="Rising share", minimum=0.0, minimum_open=True, maximum=1.0, maximum_open=True,
        step=0.05, help="`one_cycle`: fraction of the phase spent rising from base/25 to the base rate",
        advice="0.3 is the usual value.")
    plateau_patience: int = knob(
        2, widget="integer", label="Plateau patience", unit="epochs", minimum=0, maximum=1000, step=1,
        help="`reduce_on_plateau`: epochs without improvement before the rate drops")


@dataclass
class EarlyStoppingConfig:
    patience: int = knob(
        0, widget="integer", label="Patience", unit="epochs", minimum=0, maximum=MAX_EPOCHS, step=1,
        zero_text="off", help="stop a phase after this many epochs without improvement",
        advice="3-5 is typical.")
    restore_best: bool = knob(
        True, widget="switch", label="Restore best", switch_text="keep the best epoch's weights",
        help="after early stopping, go back to the best weights before the next phase")


@dataclass
class TrainingConfig:
    """How the network trains: the mode sets which phases run (``training.engine.recipe``)."""

    mode: str = knob(
        "auto", widget="choice", label="Training mode", choices=TRAINING_MODES,
        choice_labels={"auto": "Automatic (from the weights)",
                       "fine_tune": "Pretrained: train the head, then fine-tune",
                       "head_only": "Pretrained: head only",
                       "from_scratch": "From scratch: train the whole network"},
        help="`fine_tune`: the head trains on the frozen backbone, then the top layers are "
             "unfrozen; `head_only`: only the head trains; `from_scratch` (needs `model.weights` "
             "`none`): the whole network, BatchNorm included, trains from the first epoch at "
             "`optimizer.learning_rate` (or `training.fine_tune_learning_rate` when set) for "
             "`training.head_epochs` + `training.fine_tune_epochs` epochs; `auto`: `from_scratch` when `model.weights` is `none`, else `fine_tune`",
        advice="A frozen backbone with random weights computes random features: without pretrained "
               "weights, train from scratch.")
    head_epochs: int = knob(
        5, widget="integer", label="Head epochs", minimum=0, maximum=MAX_EPOCHS, step=1,
        help="epochs of the head phase (backbone frozen); 0 skips it", advice="Fast; 3-10 is typical.")
    fine_tune_epochs: int = knob(
        5, widget="integer", label="Fine-tune epochs", minimum=0, maximum=MAX_EPOCHS, step=1,
        help="epochs of the fine-tuning phase; 0 skips it",
        advice="Slower; usually gives the last few percent of accuracy.")
    fine_tune_layers: int | str = knob(
        30, widget="layers", label="Fine-tune top layers", choices=("all",), minimum=0, maximum=100000,
        step=5, zero_text="none (head only)",
        help="how many of the backbone's top layers (with weights) to unfreeze, or `\"all\"`",
        advice="20-50 is a common middle ground; all unfreezes the whole backbone (needs more data).")
    fine_tune_learning_rate: float | None = knob(
        None, widget="log", label="Fine-tune rate", minimum=0.0, minimum_open=True, maximum=MAX_RATE,
        step=1e-6, none_text="auto",
        help="base rate of the fine-tuning phase; `null` = a tenth of `optimizer.learning_rate` after a "
             "head phase on a pretrained backbone, `optimizer.learning_rate` itself from scratch or with "
             "no head phase",
        advice="Auto follows the usual recipe: a tenth protects the pretrained features the head has just "
               "learned to read; with nothing to protect, a tenth would only train ten times slower.")
    feature_cache: str = knob(
        "auto", widget="choice", label="Feature cache", choices=FEATURE_CACHE_MODES,
        choice_labels={"auto": "Automatic (when it is faster)", "off": "off (run the backbone every epoch)"},
        help="`auto`: the head phase computes the frozen backbone's features once and trains the head on "
             "them (the same result, many times faster; with augmentation on, 3 augmented copies when the "
             "head phase has more epochs than that); `off`: the backbone runs on every image every epoch",
        advice="Leave it on auto: the run's log says whether the cache was used and why.")
    monitor: str = knob(
        "val_loss", widget="choice", label="Monitor", choices=MONITORS,
        help="metric that picks the best model and drives early stopping",
        advice="val_loss is smoother; val_accuracy is what you usually care about.")
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    seed: int = _seed(1337, "seed of weight initialization, augmentation and dropout", "Seed",
                      "The same seed repeats a run.")
    mixed_precision: str = knob(
        "auto", widget="choice", label="Mixed precision", choices=DEVICE_SWITCHES,
        choice_labels={"auto": "Automatic (on a recent GPU)", "on": "on (float16)", "off": "off (float32)"},
        help="compute in float16 with float32 weights (Keras `mixed_float16`); `auto`: on for a GPU of "
             "compute capability 7.0 or more, off on a CPU and older GPUs",
        advice="On a recent NVIDIA GPU it is much faster and halves the activations' memory. On a CPU it "
               "runs, but much slower (the run warns).")
    jit_compile: str = knob(
        "auto", widget="choice", label="XLA compilation", choices=DEVICE_SWITCHES,
        choice_labels={"auto": "Automatic (on for a GPU)", "on": "on", "off": "off"},
        help="compile each training step with XLA (`jit_compile`); `auto`: on for a GPU, off on a CPU",
        advice="Usually faster on a GPU after a slower first step; on a CPU it made training about 7x "
               "slower (the run warns).")
    tensorboard_histograms: bool = knob(
        False, widget="switch", label="TensorBoard histograms", switch_text="weights and gradients",
        help="also write a histogram of every trainable weight and of its gradient once an epoch to the "
             "run's TensorBoard logs (`RUN_DIR/tensorboard`; scalars are always written)",
        advice="For looking inside a run with TensorBoard; it costs a gradient pass per epoch and disk space.")
    augment_in: str = knob(
        "auto", widget="choice", label="Augment in", choices=AUGMENT_PLACES,
        choice_labels={"auto": "Automatic (the GPU if any)",
                       "input_pipeline": "the input pipeline (CPU)",
                       "training_step": "the training step (GPU)"},
        help="where augmentation runs: `input_pipeline`, a parallel map on the CPU; `training_step`, Keras "
             "layers inside the training step, on the GPU; `auto`: the training step on a GPU, the input "
             "pipeline on a CPU",
        advice="Leave it on auto. On a GPU the CPU then only decodes images and cannot starve it; the run's "
               "log says where augmentation runs and why.")
    distributed: str = knob(
        "off", widget="choice", label="Train on", choices=DISTRIBUTED_MODES,
        choice_labels={"off": "one device (first GPU or CPU)",
                       "mirrored": "all GPUs of this machine",
                       "multi_worker": "several machines (TF_CONFIG)"},
        help="`mirrored`: every GPU of this machine trains on its share of each batch "
             "(tf.distribute.MirroredStrategy); `multi_worker`: every machine of a cluster runs the same "
             "command and trains on its share (tf.distribute.MultiWorkerMirroredStrategy, set up by the "
             "TF_CONFIG environment variable); `data.batch_size` is per device, so the global batch is it "
             "times the devices",
        advice="For a machine with several GPUs, or a cluster; the run's log and summary.json say the devices "
               "and the global batch. See the README, \"Training on a bigger machine or a cluster\".")
    scale_learning_rate: bool = knob(
        False, widget="switch", label="Scale learning rate", switch_text="by the number of devices",
        help="with `training.distributed`: multiply the learning rates by the number of devices the batch is "
             "split across (the global batch grows with them: the linear scaling rule)",
        advice="Keeps the step per image as on one device; with many devices, a few warm-up epochs "
               "(`schedule.warmup_epochs`) help.")
