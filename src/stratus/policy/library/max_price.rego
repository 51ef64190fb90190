# Max $/h per step: data.stratus.teams[TEAM].max_usd_per_hour caps what one step's machine may cost an
# hour (absent: no cap).
package stratus.policy

import rego.v1

deny contains msg if {
	places_compute
	limit := team_rules.max_usd_per_hour
	input.price_per_hour_usd > limit
	msg := sprintf("max_price: step %s on %s (%s) costs $%.6f/h; team %s allows at most $%.6f/h per step", [input.step.name, input.offering.name, input.pricing, input.price_per_hour_usd, input.tags.team, limit])
}
