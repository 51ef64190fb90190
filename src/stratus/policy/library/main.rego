# The decision every point asks (data.stratus.policy.allow): allowed when no module denies.
#
# Every other file of the library adds messages to `deny`, so load this one with them (`stratus:library`
# loads them all). The helpers here say which decisions place compute and which team asks.
package stratus.policy

import rego.v1

default allow := false

allow if count(deny) == 0

# A plan candidate, or a step about to start: the decisions that put compute somewhere.
places_compute if input.decision == "plan"

places_compute if {
	input.decision == "run"
	input.action == "start"
}

# The asking pipeline's team rules (undefined when the team has none: see allowed_providers.rego).
team_rules := data.stratus.teams[input.tags.team]

# A site's jurisdiction for messages and comparisons ("none declared" never equals a real one).
jurisdiction(site) := upper(site.jurisdiction) if is_string(site.jurisdiction)

else := "no declared jurisdiction"
