"""The rules both halves of the reconciler read: the rollout rules (which moves a change makes
on a line, which it may make now) and a site's calendar. Pure; imports only the contract."""
