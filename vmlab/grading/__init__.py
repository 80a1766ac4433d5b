"""Grading the labs: a grader, student versions and an export to otter-grader.

    from vmlab.grading import grade, Options
    grade("labs/01-meet-the-hypervisor.ipynb", ["submissions/"], out="scores.csv", feedback="fb/", jobs=2)

Nothing here imports nbformat, nbclient or otter at import time (the `grade` extra has them).
"""

from vmlab.grading.grader import ExerciseResult, Options, SubmissionResult, grade, grade_submission
from vmlab.grading.lab import Lab, load_lab

__all__ = ["grade", "grade_submission", "Options", "ExerciseResult", "SubmissionResult", "Lab", "load_lab"]
