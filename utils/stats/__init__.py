"""Pure statistics for experiment verdicts: Bayesian comparisons, resampling, planning.

The public names are re-exported here for outside tools (`from utils.stats import
compare_conversion`). Modules inside this package import each other by their full names,
never through this file, so the re-export cannot form an import circle.
"""

from utils.stats.bayesian import (
    ConversionStats,
    MeanStats,
    compare_conversion,
    compare_mean,
    compare_percentile,
)
from utils.stats.paired import PairedComparison, compare_paired
from utils.stats.planning import sample_size_conversion, sample_size_mean, srm_p_value

__all__ = [
    "ConversionStats", "MeanStats", "PairedComparison", "compare_conversion", "compare_mean",
    "compare_paired", "compare_percentile",
    "sample_size_conversion", "sample_size_mean", "srm_p_value",
]
