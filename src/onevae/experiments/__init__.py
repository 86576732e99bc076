"""The paper's claims measured with our training code: experiment files, a resumable runner, the report."""

from .report import write_results
from .runner import RunOptions, run_experiment
from .spec import ExperimentSpec, find_experiments, load_experiment

__all__ = ["ExperimentSpec", "RunOptions", "find_experiments", "load_experiment", "run_experiment", "write_results"]
