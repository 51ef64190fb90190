"""A planned pipeline as another workflow engine's file: Kubeflow Pipelines IR, an Argo Workflow.

:mod:`.spec` turns a pipeline and its plan into tasks (pure), :mod:`.gaps` lists what the engines cannot
express, :mod:`.contract` is the container every task runs (the step's worker). The engines' SDKs are
optional extras, imported only by :mod:`.to_kfp` (``stratus[kfp]``) and :mod:`.to_argo`
(``stratus[argo]``), which are therefore not imported here.
"""

from stratus.export.gaps import Gap, find_gaps
from stratus.export.spec import ExportSpec, Input, SecretEnv, Task, build_spec, parse_secret

__all__ = ["ExportSpec", "Gap", "Input", "SecretEnv", "Task", "build_spec", "find_gaps", "parse_secret"]
