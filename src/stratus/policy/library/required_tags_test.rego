package stratus.policy_test

import rego.v1

import data.stratus.policy

test_required_tags_allow_team_and_project if {
	count({m | some m in policy.deny; startswith(m, "required_tags")}) == 0 with input as candidate with data.stratus.teams as teams
}

test_required_tags_deny_a_missing_project if {
	untagged := object.union(object.remove(candidate, ["tags"]), {"tags": {"team": "risk-ml"}})
	"required_tags: pipeline fraud-detection has no \"project\" tag (tags required: team, project)" in policy.deny with input as untagged with data.stratus.teams as teams
}

test_required_tags_deny_an_empty_team if {
	blank := object.union(candidate, {"tags": {"team": "", "project": "fraud"}})
	"required_tags: pipeline fraud-detection has no \"team\" tag (tags required: team, project)" in policy.deny with input as blank with data.stratus.teams as teams
}
