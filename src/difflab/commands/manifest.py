"""`difflab manifest`: write the run manifest (git, packages, device, resolved config and its hash).

    python -m difflab manifest --config-json '<json>' --started-file results/logs/run_started_utc.txt \
        --out results/manifest.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from difflab import DifflabError
from difflab.io import write_json
from difflab.manifest import build_manifest


def cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="difflab manifest", description=__doc__.splitlines()[0])
    parser.add_argument("--config-json", required=True, help="the resolved config as JSON")
    parser.add_argument("--started-file", help="file holding the run's start time (written by the Snakefile's onstart)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.config_json)
    except json.JSONDecodeError as exc:
        raise DifflabError(f"--config-json is not valid JSON: {exc.msg}") from None
    started = None
    if args.started_file and Path(args.started_file).exists():
        started = Path(args.started_file).read_text().strip()
    manifest = build_manifest(config, started)
    write_json(args.out, manifest)
    print(f"manifest: commit {manifest['git_commit']} (dirty={manifest['git_dirty']}), profile {manifest['profile']}, "
          f"config sha256 {manifest['config_sha256'][:12]} -> {args.out}")
