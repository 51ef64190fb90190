package stratus.policy_test

import rego.v1

import data.stratus.policy

us_site := {"name": "gcp-us", "provider": "gcp", "region": "us-east1", "jurisdiction": "US"}

test_residency_denies_compute_outside_the_bound if {
	abroad := object.union(candidate, {"site": us_site})
	"residency: step train reads data that must stay in EU; gcp-us is in US" in policy.deny with input as abroad with data.stratus.teams as teams
}

test_residency_allows_unbound_data_anywhere if {
	policy.allow with input as object.union(candidate, {"site": us_site, "residency": []}) with data.stratus.teams as teams
}

test_residency_denies_a_copy_outside_the_bound if {
	copied := {"decision": "run", "action": "copy", "artifact": "ingest.transactions", "residency": ["EU"], "from": candidate.site, "to": us_site}
	"residency: ingest.transactions must stay in EU; gcp-us is in US" in policy.deny with input as copied with data.stratus.teams as teams
}

test_residency_denies_a_repair_to_a_site_of_no_jurisdiction if {
	repaired := {"decision": "repair", "artifact": "ingest.transactions", "residency": ["EU"], "to": {"name": "lab", "jurisdiction": null}, "from": ["gcp-eu-west"]}
	"residency: ingest.transactions must stay in EU; lab is in no declared jurisdiction" in policy.deny with input as repaired with data.stratus.teams as teams
}

test_residency_allows_a_repair_inside_the_bound if {
	repaired := {"decision": "repair", "artifact": "ingest.transactions", "residency": ["EU"], "to": candidate.site, "from": ["onprem-eu-gpu"]}
	policy.allow with input as repaired with data.stratus.teams as teams
}

test_residency_denies_serving_outside_the_bound if {
	serve := {"decision": "serve", "model": {"name": "fraud", "residency": ["EU"]}, "site": us_site}
	"residency: model fraud must stay in EU; gcp-us is in US" in policy.deny with input as serve with data.stratus.teams as teams
}

test_residency_allows_serving_an_unbound_model_anywhere if {
	policy.allow with input as {"decision": "serve", "model": {"name": "fraud", "residency": []}, "site": us_site}
}
