"""Suite-wide settings.

Most tests write platform files with the sandbox servers' keys inline (the legacy form, kept behind
``--allow-inline-secrets``); the tests of secret references (tests/*/test_secret*.py) clear this
variable where they check that literals are refused.
"""

import os

os.environ.setdefault("STRATUS_ALLOW_INLINE_SECRETS", "1")
