# GPU types per team: data.stratus.teams[TEAM].gpus lists the accelerator names a team may use
# (case-insensitive); absent or empty, the team may use none.
package stratus.policy

import rego.v1

deny contains msg if {
	places_compute
	gpu := input.step.resources.accelerators
	gpu != null
	allowed := object.get(object.get(data.stratus.teams, input.tags.team, {}), "gpus", [])
	not _gpu_allowed(gpu.name, allowed)
	msg := sprintf("gpu_types: team %s may not use %s GPUs (step %s; allowed: %s)", [input.tags.team, gpu.name, input.step.name, _gpus_listed(allowed)])
}

_gpu_allowed(name, allowed) if {
	some candidate in allowed
	lower(candidate) == lower(name)
}

_gpus_listed(values) := concat(", ", values) if count(values) > 0

else := "none"
