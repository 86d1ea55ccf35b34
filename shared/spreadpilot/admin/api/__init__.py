"""The endpoints, one module per area; importing this package declares them on API."""

import spreadpilot.admin.api.actions
import spreadpilot.admin.api.followers
import spreadpilot.admin.api.money
import spreadpilot.admin.api.operations
import spreadpilot.admin.api.session
import spreadpilot.admin.api.status
import spreadpilot.admin.api.trading  # noqa: F401
