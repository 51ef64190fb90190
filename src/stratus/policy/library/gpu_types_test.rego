package stratus.policy_test

import rego.v1

import data.stratus.policy

test_gpu_types_allow_a_listed_gpu_whatever_its_case if {
	lower_case := object.union(candidate, {"step": object.union(candidate.step, {"resources": {"cpus": 4, "memory_gb": 16, "accelerators": {"name": "l4", "count": 1}}})})
	policy.allow with input as lower_case with data.stratus.teams as teams
}

test_gpu_types_deny_an_unlisted_gpu if {
	a100 := object.union(candidate, {"step": object.union(candidate.step, {"resources": {"cpus": 4, "memory_gb": 16, "accelerators": {"name": "A100", "count": 8}}})})
	"gpu_types: team risk-ml may not use A100 GPUs (step train; allowed: L4)" in policy.deny with input as a100 with data.stratus.teams as teams
}

test_gpu_types_deny_every_gpu_to_a_team_listing_none if {
	no_gpus := {"risk-ml": {"providers": ["gcp"]}}
	"gpu_types: team risk-ml may not use L4 GPUs (step train; allowed: none)" in policy.deny with input as candidate with data.stratus.teams as no_gpus
}
