package stratus.policy_test

import rego.v1

import data.stratus.policy

aws_site := {"name": "aws-us", "provider": "aws", "region": "us-east-1", "jurisdiction": "US"}

test_allowed_providers_deny_another_provider if {
	elsewhere := object.union(candidate, {"site": aws_site, "residency": []})
	"allowed_providers: team risk-ml may not use provider aws at aws-us (allowed: gcp, onprem)" in policy.deny with input as elsewhere with data.stratus.teams as teams
}

test_allowed_providers_deny_a_team_without_entry if {
	stranger := object.union(candidate, {"tags": {"team": "nobody", "project": "x"}})
	"allowed_providers: team nobody has no entry in data.stratus.teams" in policy.deny with input as stranger with data.stratus.teams as teams
}

test_allowed_regions_deny_another_region if {
	vision := object.union(candidate, {"tags": {"team": "vision", "project": "cv"}, "residency": [], "site": object.union(aws_site, {"region": "us-west-2"})})
	"allowed_providers: team vision may not use region us-west-2 at aws-us (allowed: us-east-1)" in policy.deny with input as vision with data.stratus.teams as teams
}

test_allowed_regions_allow_a_listed_region if {
	vision := object.union(candidate, {"tags": {"team": "vision", "project": "cv"}, "residency": [], "step": object.union(candidate.step, {"resources": {"cpus": 1, "memory_gb": 1, "accelerators": null}}), "site": aws_site})
	policy.allow with input as vision with data.stratus.teams as teams
}
