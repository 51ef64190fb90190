"""The container every exported task runs: the step's worker, with its request as an argument.

The same contract as ``stratus k8s render`` and the Kubernetes executor: ``python -m
stratus.executors.worker REQUEST.json`` in the site's image, the request built by
:func:`stratus.executors.process.worker_payload`, and ``STRATUS_STEP``/``STRATUS_SITE``
in the environment (the run id in the request). One difference: the engines decide where artifacts
live (KFP only at run time), so the paths are the engine's own placeholders, and those are substituted
in a container's arguments, not in its environment. The request therefore travels as the first
argument, and the script writes it to the file the worker reads, after making the outputs' folders.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

from stratus.executors.base import StepRequest
from stratus.executors.process import worker_payload
from stratus.export.spec import Task
from stratus.step import ENV_SITE, ENV_STEP

__all__ = ["WORK_DIR", "container", "task_env"]

#: The step's working folder inside the container (``ctx.workdir``; ``result.json`` goes there).
WORK_DIR = "/tmp/stratus-step"
_REQUEST = "/tmp/stratus-request.json"
_SCRIPT = (
    'request="$1"; shift; '
    'for out in "$@"; do mkdir -p "$(dirname "$out")"; done; '
    f'mkdir -p {WORK_DIR} && printf "%s" "$request" > {_REQUEST} && '
    f"exec python -m stratus.executors.worker {_REQUEST}"
)


def container(
    task: Task, run_id: str, input_paths: Mapping[str, str], output_paths: Mapping[str, str]
) -> tuple[list[str], list[str]]:
    """Command and arguments of ``task``'s container.

    ``input_paths`` maps each :class:`~stratus.export.spec.Input`'s name, and ``output_paths`` each
    output's name, to where the engine puts that artifact. A federated step's inputs are its
    participants' data (``ctx.participants``), grouped by the site they belong to.
    """
    inputs: dict[str, Path] = {}
    participants: dict[str, dict[str, Path]] = {}
    for item in task.inputs:
        path = Path(input_paths[item.name])
        if item.site is None:
            inputs[item.ref] = path
        else:
            participants.setdefault(item.site, {})[item.ref] = path
    request = StepRequest(
        run_id=run_id,
        step=task.ref,
        entrypoint=task.entrypoint,
        inputs=inputs,
        outputs={name: Path(output_paths[name]) for name in task.outputs},
        workdir=Path(WORK_DIR),
        params=task.params,
        participants=participants,
    )
    payload = json.dumps(worker_payload(request), sort_keys=True, default=str)
    return ["sh", "-c", _SCRIPT, "stratus-step"], [payload, *(output_paths[n] for n in task.outputs)]


def task_env(task: Task) -> dict[str, str]:
    """The ``STRATUS_*`` variables a step's pod carries, as ``stratus k8s render`` sets them.

    The run id is in the request only: KFP substitutes its placeholders in arguments, not in env.
    """
    return {**task.env, ENV_STEP: task.ref, ENV_SITE: task.site}
