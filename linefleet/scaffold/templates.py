"""The text of the files `linefleet init` writes (`%(name)s` placeholders, `%%` for a percent)."""

from __future__ import annotations

POLICY = """\
# yaml-language-server: $schema=../schema/policy.schema.json
# The fleet policy: who owns what, what evidence a promotion needs, and when a canary is rolled
# back. Every key is optional; these are the defaults, written out so you can see the knobs.
apiVersion: linefleet.io/v1
kind: Policy
owners:
  # CODEOWNERS: the policy, the model catalogue, the workflows, and sites without approvers.
  fleet_admins:%(admins)s
  # The taxonomies (class definitions and migrations); empty: the fleet admins.
  data_team: []
promotion:
  metric: accuracy
  tolerance: 0.01           # a candidate may be this much worse than the line's incumbent
  min_holdout_frames: 50
max_canary_lines_per_site: 2
health_gates:               # past these, the device drops a canary at once
  max_error_rate: 0.01
  max_latency_p95_ms: 100.0
  min_shadow_agreement: 0.9
  max_defect_rate_jump: 0.05
  max_drift_score: 0.3
heartbeat_seconds: 60
hold_changes_during_production: false
"""

SITE = """\
# yaml-language-server: $schema=../../../schema/site.schema.json
apiVersion: linefleet.io/v1
kind: Site
id: %(id)s
name: %(name)s
timezone: %(timezone)s
# Who approves changes under fleet/sites/%(id)s/ (CODEOWNERS: @user, @org/team or an e-mail).
approvers:%(approvers)s
# When the lines run (local time) and when nothing may change; see docs/plan.md.
production_windows: []
freeze_periods: []
"""

TAXONOMY = """\
# yaml-language-server: $schema=../../schema/taxonomy.schema.json
# A starter taxonomy: edit the classes before the first model is trained on it. Once a model
# uses a version, change classes only in a new file (v2.yaml) with a `migration:`.
apiVersion: linefleet.io/v1
kind: Taxonomy
name: surface-defects
version: 1
description: Cosmetic surface defects.
classes:
- id: ok
  definition: 'No visible defect: the surface meets the specification.'
  severity: none
- id: scratch
  definition: A thin linear mark in the surface, longer than 2 mm.
  severity: minor
- id: dent
  definition: A local depression or bump in the surface, visible as a distorted reflection.
  severity: major
"""

MODELS_README = """\
# The model catalogue

One file per model, `fleet/models/<name>.yaml`, listing every version that may run on a line:
its taxonomy, its ONNX artifact (URL, sha256, size), its input, and evidence per line. It starts
empty. `linefleet train` writes versions here through a pull request; a model trained elsewhere
is added by hand (see "Start your own fleet" in linefleet's README for a complete example).
"""

GITIGNORE = """\
# Private keys never go into the fleet repository (`linefleet keys generate` writes signing.key).
signing.key
*.key
*.pem
# Local state of linefleet commands and agents.
.linefleet/
__pycache__/
.venv/
"""

CHECK_WORKFLOW = """\
# The pull-request check of this fleet, with linefleet %(version)s.
#
# It runs as the BASE branch defines it (`pull_request_target`): a pull request cannot change
# this file, the action it uses, or the linefleet version that judges it. The change is checked
# out as data only (no code from it runs): validate against the base branch, plan, CODEOWNERS,
# and one comment on the pull request with the result, updated on every push.
# Make "fleet check / check" a required status check of the `main` branch.
# To upgrade linefleet, change `@v%(version)s` here and in fleet-publish.yml.
name: fleet check

on:
  pull_request_target:
    branches: [main]

permissions:
  contents: read
  pull-requests: write

concurrency:
  group: fleet-check-${{ github.event.pull_request.number }}
  cancel-in-progress: true

jobs:
  check:
    runs-on: ubuntu-latest
    timeout-minutes: 15
    steps:
      - uses: actions/checkout@v4
        with:
          ref: refs/pull/${{ github.event.pull_request.number }}/merge
          fetch-depth: 0 # validate and plan read the base revision from git
          persist-credentials: false

      - uses: %(actions)s/.github/actions/check@v%(version)s
"""

PUBLISH_WORKFLOW = """\
# Publish this fleet on every push to main, with linefleet %(version)s: the CURRENT tip of main
# (a queued or re-run job never publishes an older commit), one publish at a time.
# Secrets: LINEFLEET_BROKER (mqtts://HOST:PORT) and LINEFLEET_SIGNING_KEY (the PEM of the key
# `linefleet keys generate` wrote; its .pub is pinned on every device).
# To upgrade linefleet, change `@v%(version)s` here and in fleet-check.yml.
name: fleet publish

on:
  push:
    branches: [main]
  workflow_dispatch:

permissions:
  contents: read
  pull-requests: read # who merged the published commit: the approver each document names

concurrency:
  group: linefleet-publish
  cancel-in-progress: false

jobs:
  publish:
    runs-on: ubuntu-latest
    timeout-minutes: 15
    steps:
      - uses: actions/checkout@v4
        with:
          ref: main
          fetch-depth: 0
          persist-credentials: false

      - uses: %(actions)s/.github/actions/publish@v%(version)s
        with:
          broker: ${{ secrets.LINEFLEET_BROKER }}
          signing-key: ${{ secrets.LINEFLEET_SIGNING_KEY }}
"""

README = """\
# Our fleet

The desired state of our inspection lines, managed with
[linefleet](https://github.com/%(actions)s) %(version)s: every change is a pull request,
checked and planned by CI, and published to the edge devices when it is merged.

```
fleet/policy.yaml              # owners, promotion evidence, health gates
fleet/models/                  # the model catalogue (empty: add your first model)
fleet/sites/%(site)s/site.yaml   # timezone, approvers, production windows, freezes
fleet/sites/%(site)s/lines/      # one file per line: cameras and rollout
fleet/sites/%(site)s/devices/    # one file per edge device: which cameras it serves
taxonomies/                    # defect classes, versioned
schema/                        # JSON Schemas: your editor checks files as you type
```

## What to do next
1. Edit the starter taxonomy in `taxonomies/` to your defect classes.
2. Add your model to `fleet/models/` (its ONNX file, sha256 and size), a line with its cameras
   under `fleet/sites/%(site)s/lines/`, and the edge device that serves it under
   `fleet/sites/%(site)s/devices/`. Linefleet's README, "Start your own fleet", has a complete
   example.
3. Check it exactly as CI will, then open a pull request:
   ```sh
   pip install 'linefleet[control]==%(version)s'
   linefleet validate --base origin/main
   linefleet plan --base origin/main --format text
   linefleet codeowners --check     # after changing approvers: run `linefleet codeowners`
   ```
4. On GitHub: add the secrets `LINEFLEET_BROKER` and `LINEFLEET_SIGNING_KEY` (from
   `linefleet keys generate --out keys`; keep `keys/` out of git), require the status check
   "fleet check / check" and code-owner reviews on `main`.

## The workflows
`.github/workflows/fleet-check.yml` checks every pull request with linefleet %(version)s as
the base branch defines it, so a pull request cannot change its own check.
`.github/workflows/fleet-publish.yml` publishes main. Both use linefleet's actions at
`@v%(version)s`: that tag is the linefleet version they install; change it in both files to
upgrade.
"""
