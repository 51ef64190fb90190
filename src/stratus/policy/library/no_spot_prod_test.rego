package stratus.policy_test

import rego.v1

import data.stratus.policy

prod_spot := object.union(candidate, {"pricing": "spot", "tags": {"team": "risk-ml", "project": "fraud", "tier": "prod"}})

test_no_spot_prod_denies_spot_in_prod if {
	"no_spot_prod: step train of fraud-detection is tier: prod and may not run on spot capacity" in policy.deny with input as prod_spot with data.stratus.teams as teams
}

test_no_spot_prod_allows_on_demand_in_prod if {
	policy.allow with input as object.union(prod_spot, {"pricing": "on-demand"}) with data.stratus.teams as teams
}

test_no_spot_prod_allows_spot_outside_prod if {
	policy.allow with input as object.union(candidate, {"pricing": "spot"}) with data.stratus.teams as teams
}
