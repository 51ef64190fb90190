package stratus.policy_test

import rego.v1

import data.stratus.policy

test_max_price_denies_a_dearer_machine if {
	dear := object.union(candidate, {"price_per_hour_usd": 2.5})
	"max_price: step train on g2-standard-4 (on-demand) costs $2.500000/h; team risk-ml allows at most $2.000000/h per step" in policy.deny with input as dear with data.stratus.teams as teams
}

test_max_price_allows_the_cap_itself if {
	policy.allow with input as object.union(candidate, {"price_per_hour_usd": 2.0}) with data.stratus.teams as teams
}

test_max_price_has_no_cap_when_the_team_sets_none if {
	uncapped := {"risk-ml": {"providers": ["gcp"], "gpus": ["L4"]}}
	policy.allow with input as object.union(candidate, {"price_per_hour_usd": 99}) with data.stratus.teams as uncapped
}
