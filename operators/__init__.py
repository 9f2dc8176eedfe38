"""Data operators on Ray Data: the engine (``operators.core``) and the operator families.

Importing this package sets the offline defaults and imports every family, which registers the
built-in operators. The upper layers (evaluators, experiments, tools, agent) use the names
exported here, not the modules behind them.
"""

from operators.core.env import apply_offline_defaults, workspace

apply_offline_defaults()

from operators import dedup, filters, llm, mappers, readers, selection  # noqa: E402  (registers the operators)
from operators.core.base import (  # noqa: E402
    Filter,
    Operator,
    OperatorKind,
    UnknownOperatorError,
    all_operators,
    get_operator,
    is_registered,
)
from operators.core.cache_gc import CacheUsage, GcResult, cache_usage, collect_garbage  # noqa: E402
from operators.core.digest import sha256_file  # noqa: E402
from operators.core.fate import Fate, explain_document, sample_dropped  # noqa: E402
from operators.core.ledger import LedgerError, read_ledger  # noqa: E402
from operators.core.manifest import Manifest, load_manifest  # noqa: E402
from operators.core.output import read_output  # noqa: E402
from operators.core.plan import StepReport  # noqa: E402
from operators.core.ray_session import ensure_ray, ray_session  # noqa: E402
from operators.core.recipe import (  # noqa: E402
    NAME_PATTERN,
    Mixture,
    Recipe,
    RecipeError,
    Source,
    Step,
    expand_uri,
    load_recipe,
    recipe_from_dict,
    recipe_from_yaml,
    shared_data_dir,
)
from operators.core.run import ReplayResult, replay, run_recipe  # noqa: E402
from operators.core.source_files import remote_scheme  # noqa: E402
from operators.core.stage_cache import CacheBusyError  # noqa: E402
from operators.filters.decontaminate import NGRAM, count_in, doc_ngrams  # noqa: E402
from operators.profiling.profile import SourceProfile, profile_sources  # noqa: E402
from operators.readers.texts import TextSet, read_text_set, read_texts  # noqa: E402
from operators.selection.quality_classifier import train_classifier  # noqa: E402
from operators.text.ngram_lm import NgramLM  # noqa: E402

__all__ = [
    "NAME_PATTERN",
    "NGRAM",
    "CacheBusyError",
    "CacheUsage",
    "Fate",
    "Filter",
    "GcResult",
    "LedgerError",
    "Manifest",
    "Mixture",
    "NgramLM",
    "Operator",
    "OperatorKind",
    "Recipe",
    "RecipeError",
    "ReplayResult",
    "Source",
    "SourceProfile",
    "Step",
    "StepReport",
    "TextSet",
    "UnknownOperatorError",
    "all_operators",
    "apply_offline_defaults",
    "cache_usage",
    "collect_garbage",
    "count_in",
    "dedup",
    "doc_ngrams",
    "ensure_ray",
    "expand_uri",
    "explain_document",
    "filters",
    "get_operator",
    "is_registered",
    "llm",
    "load_manifest",
    "load_recipe",
    "mappers",
    "profile_sources",
    "ray_session",
    "read_ledger",
    "read_output",
    "read_text_set",
    "read_texts",
    "readers",
    "recipe_from_dict",
    "recipe_from_yaml",
    "remote_scheme",
    "replay",
    "run_recipe",
    "sample_dropped",
    "selection",
    "sha256_file",
    "shared_data_dir",
    "train_classifier",
    "workspace",
]
