"""Execution paths: what a guest workload costs natively, under PV, HVM and binary translation."""

from vmlab.execution.analysis import MC_BATCH, BatchPlan, StreamAnalysis, batch_plan
from vmlab.execution.binary_translation import run_bt
from vmlab.execution.compare import PATHS, compare_paths, run_path
from vmlab.execution.explore import comparison_columns, path_comparison
from vmlab.execution.exits import EXIT_TABLE, KVM_EXIT_TABLE, ExitReason
from vmlab.execution.hvm import run_hvm
from vmlab.execution.hvm_loop import LoopResult, run_loop
from vmlab.execution.native import run_native
from vmlab.execution.ops import ArchState, Op, OpStream, architectural_state
from vmlab.execution.pv import break_even_batch, run_pv
from vmlab.execution.result import MECHANISMS, RunResult, Timeline
from vmlab.execution.workloads import MACRO_MIXES, NANOBENCHMARKS, WORKLOADS, macro, nanobenchmark, workload

__all__ = ["MC_BATCH", "BatchPlan", "StreamAnalysis", "batch_plan", "run_bt", "PATHS", "compare_paths",
           "comparison_columns", "path_comparison", "run_path", "EXIT_TABLE", "KVM_EXIT_TABLE", "ExitReason", "LoopResult", "run_hvm", "run_loop",
           "run_native", "ArchState", "Op", "OpStream", "architectural_state", "break_even_batch", "run_pv",
           "MECHANISMS", "RunResult", "Timeline", "MACRO_MIXES", "NANOBENCHMARKS", "WORKLOADS", "macro",
           "nanobenchmark", "workload"]
