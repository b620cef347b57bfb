"""Decision: playbooks as files, candidates, risk, choice."""
