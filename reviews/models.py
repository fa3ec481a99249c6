"""Review assignments, invitations, decisions and comments arrive with the review-gate issue.
This app depends on lifecycle, never the other way round."""
