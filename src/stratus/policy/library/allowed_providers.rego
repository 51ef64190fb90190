# Allowed providers and regions per team: data.stratus.teams[TEAM].providers (required) and .regions
# (optional: absent allows every region of an allowed provider). A team with no entry may place nothing.
package stratus.policy

import rego.v1

deny contains msg if {
	places_compute
	is_string(input.tags.team)
	not data.stratus.teams[input.tags.team]
	msg := sprintf("allowed_providers: team %s has no entry in data.stratus.teams", [input.tags.team])
}

deny contains msg if {
	places_compute
	providers := object.get(team_rules, "providers", [])
	not input.site.provider in providers
	msg := sprintf("allowed_providers: team %s may not use provider %s at %s (allowed: %s)", [input.tags.team, input.site.provider, input.site.name, _listed(providers)])
}

deny contains msg if {
	places_compute
	regions := team_rules.regions
	not input.site.region in regions
	msg := sprintf("allowed_providers: team %s may not use region %s at %s (allowed: %s)", [input.tags.team, input.site.region, input.site.name, _listed(regions)])
}

_listed(values) := concat(", ", values) if count(values) > 0

else := "none"
