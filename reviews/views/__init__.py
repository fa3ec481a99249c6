"""The review pages: the reviewer inbox, a project's reviewers and invitations, accepting an
invitation, the review page itself, the instructor override and the course's review settings."""
