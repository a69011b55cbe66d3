"""Slack's limits on Block Kit (docs.slack.dev Block Kit reference), in one table.

The builders cut outside text to the limit of the field it goes in, and leave out blocks past
MAX_BLOCKS; the fake Slack's validator (``tests/fakes/slack_blocks.py``) checks the same limits.
"""

from __future__ import annotations

HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
MAX_FIELDS = 10
MAX_BLOCKS = 50
HOME_MAX_BLOCKS = 100  # a view (the Home tab, a modal) takes 100 blocks, a message 50
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
CONFIRM_TITLE_MAX = 100  # text 300, confirm and deny 30: ours, and shorter
CONTEXT_MAX = 2000
OPTION_TEXT_MAX = 75
INITIAL_VALUE_MAX = 3000
MODAL_TITLE_MAX = 24
MODAL_BUTTON_MAX = 24
METADATA_MAX = 3000  # callback_id, block_id and action_id (255) are all ours, and short
