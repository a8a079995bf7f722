"""panflow: one flow-matching engine for many kinds of data.

Conventions: t = 0 is noise, t = 1 is data; ``x_t = α_t x1 + σ_t x0``. This module is the
public API that plugins import from; everything else is internal.
"""

from ._version import __version__
from .assembly import Assembly, assemble, load_data, training_spec
from .blocks import KVCache, TokenAttention, block_allow  # block diffusion (issue 17)
from .cache import cache_dir, cached_weights
from .checkpoint import find_checkpoint, load_contract
from .components import (
                         Backbone,
                         Benchmark,
                         ConditionSpec,
                         DataBundle,
                         Dataset,
                         DatasetOptions,
                         DataSpec,
                         Domain,
                         Encoder,
                         Metric,
                         Objective,
                         Samples,
                         consumes_labels_and_vectors,
)
from .config import RunConfig, TrainConfig
from .coupling import COUPLINGS, Coupling, register_coupling  # few-step generation (issue 19)
from .deferred import lazy
from .errors import (
                         CheckpointError,
                         ConfigError,
                         ContractError,
                         DataError,
                         NonFiniteError,
                         PanflowError,
                         UnknownNameError,
                         check_finite,
)
from .guidance import cfg_field
from .hooks import HOOK_API_VERSION, hookimpl
from .inpaint import INPAINT_METHODS, InpaintMethod, InpaintProblem, register_inpaint_method
from .known import KNOWN_SAMPLERS, KnownSampler, expand_known, make_known_sampler, register_known_sampler
from .latents import encode_source, open_cache, write_cache
from .likelihood import divergence_exact, divergence_hutchinson, log_likelihood, standard_normal_logpdf
from .loader import LoaderOptions, epoch_permutation, rank_shards
from .masked import AutoregressiveObjective, MaskedObjective, MaskedPath, autoregressive_nll
from .metrics import frechet_distance, kernel_inception_distance, memorisation_rate, precision_recall
from .nn import AdaLNBlock, AdaLNOutput, ConditionEmbedding, LabelEmbedding, Rotary, TimeEmbedding, count_parameters
from .objective import FlowObjective, masked_mean
from .paths import AffinePath, CosineSchedule, LinearSchedule, VPSchedule, make_schedule
from .plugins import PluginUnavailable, get_registry, load_plugins
from .potentials import POTENTIALS, Potential, get_potential, register_potential
from .preview import Preview, colormap, image_grid, png_bytes, polylines_svg, scatter_svg, upscale, wav_bytes  # report (issue 21)
from .progress import enabled as progress_enabled  # report (issue 21)
from .progress import stage as progress_stage  # report (issue 21)
from .registry import Registry
from .regression import RegressionObjective
from .run import Run, build_config, load_run, train
from .sampling import SampleOptions, SampleResult, guided_velocity
from .scorecard import (
                         Bar,
                         Row,
                         ScoreCard,
                         bar,
                         hardware,
                         loss_curve,  # report (issue 21)
                         write_result,
)
from .sde import sample_sde
from .shardstore import ShardStore, ShardWriter
from .shortcut import ShortcutObjective
from .solvers import FIXED_STEP_COST, SOLVERS, Solver, dopri5, get_solver, integrate, register_solver, sample_ode, time_grid
from .stats import RunningMoments, StandardEncoder, fit_encoder, iter_batches
from .streaming import BadItem, LazySamples, ShardedSamples, collate, draw_subset, heldout, is_lazy
from .time_samplers import (
                         TIME_SAMPLERS,
                         LogitNormalTime,
                         ShiftedTime,
                         TimeSampler,
                         UniformTime,
                         UShapedTime,
                         make_time_sampler,
                         register_time_sampler,
)
from .trainer import Trainer, resolve_device
from .unet import UNet
from .unmask import UNMASK_SAMPLERS, UnmaskSampler, register_unmask_sampler, shape_probs  # issue 17

__all__ = [
    "loss_curve", "Preview", "colormap", "image_grid", "png_bytes", "polylines_svg", "scatter_svg", "upscale",
    "wav_bytes", "progress_enabled", "progress_stage",  # report (issue 21)
    "__version__", "AdaLNBlock", "AutoregressiveObjective", "AdaLNOutput", "Rotary", "AffinePath", "Backbone", "Bar",
    "Benchmark", "CheckpointError", "ConfigError", "ContractError", "FIXED_STEP_COST", "CosineSchedule",
    "DataBundle", "DataError", "DataSpec", "Dataset", "DatasetOptions", "Domain", "Encoder", "FlowObjective",
    "HOOK_API_VERSION", "LabelEmbedding", "LinearSchedule", "LogitNormalTime", "MaskedObjective",
    "MaskedPath", "Metric", "NonFiniteError", "PanflowError", "PluginUnavailable", "Registry", "Row", "Run",
    "RunConfig", "SOLVERS", "SampleOptions", "Samples", "ScoreCard", "ShiftedTime", "TimeEmbedding",
    "TIME_SAMPLERS", "TimeSampler", "TrainConfig", "Trainer", "UNet", "UShapedTime", "UniformTime", "UnknownNameError",
    "VPSchedule", "autoregressive_nll", "bar",
    "build_config", "cfg_field", "check_finite", "count_parameters", "divergence_exact",
    "divergence_hutchinson", "dopri5", "find_checkpoint", "frechet_distance", "get_registry", "hardware",
    "hookimpl", "lazy", "integrate", "kernel_inception_distance", "load_contract", "load_plugins", "load_run",
    "log_likelihood", "make_schedule", "make_time_sampler", "register_time_sampler", "masked_mean", "memorisation_rate",
    "precision_recall", "resolve_device", "sample_ode", "sample_sde", "standard_normal_logpdf", "time_grid",
    "train", "write_result", "Assembly", "assemble", "load_data", "training_spec", "ConditionSpec", "Objective",
    "INPAINT_METHODS", "InpaintMethod", "InpaintProblem", "register_inpaint_method",
    "POTENTIALS", "Potential", "get_potential", "register_potential",
    "KNOWN_SAMPLERS", "KnownSampler", "expand_known", "make_known_sampler", "register_known_sampler",
    "ConditionEmbedding", "RegressionObjective", "consumes_labels_and_vectors",
    "cache_dir", "cached_weights", "SampleResult", "guided_velocity", "Solver", "get_solver", "register_solver",
    "BadItem", "LazySamples", "ShardedSamples", "collate", "draw_subset", "heldout", "is_lazy", "LoaderOptions",
    "epoch_permutation", "rank_shards", "RunningMoments", "StandardEncoder", "fit_encoder", "iter_batches",
    "ShardStore", "ShardWriter", "encode_source", "open_cache", "write_cache",
    "COUPLINGS", "Coupling", "register_coupling", "ShortcutObjective",
    "KVCache", "TokenAttention", "block_allow", "UNMASK_SAMPLERS", "UnmaskSampler", "register_unmask_sampler",
    "shape_probs",
]
