"""The running service: compile and sign desired state, publish it, follow the branch, take
device reports, show fleet status and propose rollbacks."""
