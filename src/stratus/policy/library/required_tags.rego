# Required tags: every pipeline says which team and project it spends for (the ledger allocates by them).
package stratus.policy

import rego.v1

required_tags := ["team", "project"]

deny contains msg if {
	places_compute
	some tag in required_tags
	not _tag_set(tag)
	msg := sprintf("required_tags: pipeline %s has no %q tag (tags required: %s)", [input.pipeline, tag, concat(", ", required_tags)])
}

_tag_set(tag) if {
	value := input.tags[tag]
	is_string(value)
	value != ""
}
