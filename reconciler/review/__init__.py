"""The pull-request check: validate a revision, enforce the rollout policy on a change, and plan
it (markdown for the PR, JSON for machines). Pure, apart from reading git in `revisions`."""
