# No spot for production: a pipeline tagged `tier: prod` never runs on capacity that can be reclaimed.
package stratus.policy

import rego.v1

deny contains msg if {
	places_compute
	input.pricing == "spot"
	input.tags.tier == "prod"
	msg := sprintf("no_spot_prod: step %s of %s is tier: prod and may not run on spot capacity", [input.step.name, input.pipeline])
}
