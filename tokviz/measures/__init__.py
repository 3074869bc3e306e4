"""Numbers computed from runs: summary statistics, the display re-weighting of alternatives by
sampling settings, the alignment of two scored texts, prices."""
