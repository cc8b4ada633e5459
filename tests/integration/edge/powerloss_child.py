"""The victim of the power-loss test: an agent converging through endless model changes.

    python -m tests.integration.edge.powerloss_child STATE_DIR MODELS_JSON KEY_PEM ARTIFACT_ROOT

Every round publishes (to its own inbox) the next generation, rotating the serving model
through the models in MODELS_JSON with the previous one as rollback target, so each round
downloads, verifies, loads, switches and prunes, and writes state, outbox and events. It
continues from the generation the state holds, so restarts keep moving forward.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edge_puller.agent import Agent
from linefleet_core.signing import SigningKey
from linefleet_core.wire import ModelSpec
from tests.unit.edge.documents import desired, line_doc


def main(state_dir: Path, models_json: Path, key_pem: Path, artifact_root: Path) -> None:
    key = SigningKey.from_pem(key_pem.read_bytes(), str(key_pem))
    models = [ModelSpec.model_validate(m) for m in json.loads(models_json.read_text())]
    keys = {key.key_id: key.public}
    agent = Agent("plant", "dev-1", state_dir, keys, file_roots=[artifact_root])
    generation = agent.state.generation
    print("ready", flush=True)
    while True:
        generation += 1
        serving = models[generation % len(models)]
        previous = models[(generation - 1) % len(models)]
        agent.offer_desired(desired(key, generation, line_doc(serving, previous=previous)))
        for _ in range(6):
            agent.tick()
        print(generation, flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))
