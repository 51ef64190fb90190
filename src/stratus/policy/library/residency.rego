# Data residency as a policy: the built-in rule, restated in Rego (the tests prove them equivalent).
# Data bound to jurisdictions may only be processed or stored in them; a site with no declared
# jurisdiction holds no resident data.
package stratus.policy

import rego.v1

# Compute: a step may only run where everything it reads may be.
deny contains msg if {
	places_compute
	some bound in input.residency
	upper(bound) != jurisdiction(input.site)
	msg := sprintf("residency: step %s reads data that must stay in %s; %s is in %s", [input.step.name, concat(", ", input.residency), input.site.name, jurisdiction(input.site)])
}

# Copies: a run's copy or a repair may only put bytes where their bound allows. (Written inline: with a
# helper rule of two bodies here, regorus 0.13 lost these messages under `with input as` in unit tests.)
deny contains msg if {
	input.decision in {"repair", "run"}
	object.get(input, "action", "copy") == "copy"
	some bound in input.residency
	upper(bound) != jurisdiction(input.to)
	msg := sprintf("residency: %s must stay in %s; %s is in %s", [input.artifact, concat(", ", input.residency), input.to.name, jurisdiction(input.to)])
}

# Serving: a model is served only where its bound allows.
deny contains msg if {
	input.decision == "serve"
	some bound in input.model.residency
	upper(bound) != jurisdiction(input.site)
	msg := sprintf("residency: model %s must stay in %s; %s is in %s", [input.model.name, concat(", ", input.model.residency), input.site.name, jurisdiction(input.site)])
}
