# Shared inputs of the library's tests: a plan candidate every policy allows, and team rules.
package stratus.policy_test

import rego.v1

import data.stratus.policy

teams := {
	"risk-ml": {"providers": ["gcp", "onprem"], "gpus": ["L4"], "max_usd_per_hour": 2.0},
	"vision": {"providers": ["aws"], "regions": ["us-east-1"], "gpus": ["A100"]},
}

candidate := {
	"decision": "plan",
	"pipeline": "fraud-detection",
	"tags": {"team": "risk-ml", "project": "fraud"},
	"step": {"name": "train", "kind": "single", "resources": {"cpus": 4, "memory_gb": 16, "accelerators": {"name": "L4", "count": 1}}, "spot": true},
	"site": {"name": "gcp-eu-west", "provider": "gcp", "region": "europe-west4", "jurisdiction": "EU"},
	"offering": {"name": "g2-standard-4", "vcpus": 4, "memory_gb": 16, "accelerator": {"name": "L4", "count": 1}},
	"pricing": "on-demand",
	"price_per_hour_usd": 0.85,
	"residency": ["EU"],
}

test_a_compliant_candidate_is_allowed if {
	policy.allow with input as candidate with data.stratus.teams as teams
}

test_a_step_start_is_judged_like_a_candidate if {
	start := object.union(candidate, {"decision": "run", "action": "start", "site": {"name": "aws-us", "provider": "aws", "region": "us-east-1", "jurisdiction": "US"}})
	not policy.allow with input as start with data.stratus.teams as teams
}

test_nothing_is_allowed_without_team_data if {
	not policy.allow with input as candidate with data.stratus.teams as {}
}
