"""Standard problems with trusted reference gradients."""

from ._problem import Problem as Problem, ProblemError as ProblemError
